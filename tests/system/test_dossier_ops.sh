#!/bin/sh
# The operator's side of the dossier outbox, against the real lienthongd, its
# dossier flow and lienthong-sim: `queue` (depth, held, dead, reasons),
# malformed provincial changes become dead letters of what "change" that
# `deadletters` lists and `dossier MAHOSO` shows in its timeline (with no
# citizen data in the text), `retry ID` of a change that still does not
# map leaves it dead with the reason, `retry --all` counts what stays dead,
# and after a mapping fix and a reload `retry` sends it; `drop ID --reason`
# closes a letter with its reason, in the timeline and the audit trail;
# `hold MAHOSO` keeps a dossier's new changes from the portal while others
# go out, and `release` lets them go (once: no duplicates); `overdue` and
# `late` list exactly the dossiers the feed says are overdue or finished
# late; `ack`, `resolve --note` and `waive --note` of a mismatch keep who,
# when and the note in its history and the audit trail, a resolved mismatch
# found again reopens with that history and a waived one stays waived;
# usage errors exit 2, refusals 1 with a clear message; a reader in the
# socket's group may read but not change.
#
# Which dossier gets the next generated changes is found on a twin simulator
# (same seed, same operations: the stream is deterministic), so a dossier can
# be held before its changes exist.
#
# Usage: BUILD=build sh tests/system/test_dossier_ops.sh   (needs curl, jq, sqlite3)
. "$(dirname "$0")/lib.sh"

no_proxy=127.0.0.1,localhost
NO_PROXY=$no_proxy
export no_proxy NO_PROXY

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NOW=2025-11-20T10:00:00+07:00
TOKEN=provincial-secret-token
FEED=/provincial/api/v1/ho-so/thay-doi
TWIN_PID=""
trap 'if [ -n "$TWIN_PID" ]; then kill -TERM "$TWIN_PID" 2>/dev/null; wait "$TWIN_PID" 2>/dev/null; fi; cleanup' EXIT

# lacks WHAT FILE TEXT: ok when FILE does not have TEXT (and TEXT is not empty).
lacks() {
	if [ -n "$3" ] && ! grep -qF -- "$3" "$2"; then pass "$1"; else
		fail "$1 ('$3' found or empty)"
	fi
}
# jqf FILE EXPR: FILE is not empty and EXPR holds on it.
jqf() { [ -s "$1" ] && jq -e "$2" "$1" >/dev/null; }
# jq_same FILE1 EXPR1 FILE2 EXPR2: both files are not empty and the values agree.
jq_same() {
	[ -s "$1" ] && [ -s "$3" ] && [ "$(jq -c "$2" "$1")" = "$(jq -c "$4" "$3")" ]
}
# feed_page URL CURSOR: items of one feed page (up to 1000) after CURSOR.
feed_page() {
	curl -sf -H "Authorization: Bearer $TOKEN" "$1$FEED?limit=1000&cursor=$2"
}
# feed_op URL JSON: an operation on a simulator's feed; answer on stdout.
feed_op() { curl -sf -X POST -d "$2" "$1/_sim/feed"; }
# portal M EXPR: the simulated portal's view of dossier M satisfies EXPR.
portal() { sim_json "/_sim/portal/dossier?mahoso=$1" "$2"; }
# received M SEQ: the store has the change SEQ of dossier M (a "received" event).
received() {
	json_is "dossier $1" "any(.events[]; .event == \"received\" and .detail.seq == $2)"
}
# T7: jq text of a "+07:00" time (every provincial time has that offset) in epoch s.
T7='(.[0:19] + "Z" | fromdateiso8601) - 25200'

[ -x "$BIN/lienthongd" ] || { fail "$BIN/lienthongd not built"; finish; exit 1; }
if ! "$BIN/lienthongd" --print-config-template 2>/dev/null | grep -q '\[flow\.dossier\]'; then
	pass "the dossier flow is not built yet # SKIP"
	finish
	exit 0
fi

# ---- the simulators and the daemon -------------------------------------
sim_start --dossiers 50 --dossier-now "$NOW" || { fail "the twin simulator did not start"; finish; exit 1; }
TWIN=$SIM_URL
TWIN_PID=$SIM_PID
sim_start --dossiers 50 --dossier-now "$NOW" || { fail "the simulator did not start"; finish; exit 1; }

mkdir -p "$T/mappings"
cp "$ROOT"/mappings/*.json "$T/mappings/"
conf="$T/lienthong.conf"
write_base_conf "$conf"
# Mappings of our own (fixed below), and a socket a reader in nogroup may use.
sed -i -e "s|^health_interval = 1s|&\nmappings_dir = $T/mappings|" \
	-e "s|^path = $T/ctl.sock|&\nmode = 0660\ngroup = nogroup|" "$conf"
dossier_conf "$conf"
chmod 0755 "$T"
daemon_start "$conf" || { fail "lienthongd did not start"; finish; exit 1; }
pass "lienthongd starts with the dossier flow"

# Everything of the feed is in the outbox and delivered.
feed_page "$SIM_URL" "" >"$T/feed0.json"
check "the feed has the stream of 50 dossiers" jqf "$T/feed0.json" '(.items | length) > 50 and (.has_more | not)'
last_seq=$(jq -r '.items[-1].seq' "$T/feed0.json")
last_m=$(jq -r '.items[-1].maHoSo' "$T/feed0.json")
n_dossiers=$(jq '[.items[].maHoSo] | unique | length' "$T/feed0.json")
check "the last change of the feed reaches the outbox" wait_until 20 received "$last_m" "$last_seq"
check "and the outbox drains" wait_until 20 json_is queue '.depth == 0 and .rows_sending == 0'

# ---- queue -----------------------------------------------------------------
check "queue knows every dossier of the feed ($n_dossiers), none held or dead" \
	json_is queue ".dossiers == $n_dossiers and .by_state == {active: 0, held: 0, dead: 0} and .dead_letters == 0"
check "queue: nothing waits, so no oldest time" json_is queue '.oldest_age_s == null and .oldest == null and .by_reason == {}'
check "queue has the dossier flow's status" json_is queue '.flows | length == 1 and .[0].name == "dossier"'
expect "queue prints" 0 ctl queue
has "queue prints the depth" "$T/out" "0 dossiers with work"
has "queue prints the dossiers known" "$T/out" "$n_dossiers known"
has "queue prints the flow" "$T/out" "flow dossier:"

# ---- overdue and late: what the feed says ---------------------------------------
now_s=$(date +%s)
# Per dossier: finished (3, 7, 9, 10 ever reached), its due date (the latest
# given), when it first finished.
jq --argjson now "$now_s" "
	[.items | group_by(.maHoSo)[] | {
		m: .[0].maHoSo,
		due: ([.[].hoSo.ngayHenTra | select(. != null)] | last),
		fin: ([.[] | select(.trangThai | IN(\"TU_CHOI_TIEP_NHAN\", \"CONG_DAN_RUT\",
			\"DA_XU_LY_XONG\", \"DA_TRA_KET_QUA\")) | .thoiDiem] | first)
	} | select(.due != null) | .due_s = (.due | $T7) | .fin_s = (if .fin then .fin | $T7 else null end)]
	| {overdue: [.[] | select(.fin_s == null and .due_s < \$now) | .m] | sort,
	   late: [.[] | select(.fin_s != null and .fin_s > .due_s) | .m] | sort}" \
	"$T/feed0.json" >"$T/deadlines.json"
n_overdue=$(jq '.overdue | length' "$T/deadlines.json")
n_late=$(jq '.late | length' "$T/deadlines.json")
echo "# the feed has $n_overdue dossiers overdue now and $n_late finished late"
check "the stream has overdue dossiers" test "$n_overdue" -gt 0
expect "overdue exits 0" 0 ctl_json overdue --limit 100000
check "overdue lists exactly the unfinished dossiers past their due date ($n_overdue)" \
	jq_same "$T/out" '[.overdue[].mahoso] | sort' "$T/deadlines.json" .overdue
check "overdue: most overdue first, with how long, none finished" jqf "$T/out" \
	'[.overdue[].due_ms] == ([.overdue[].due_ms] | sort) and all(.overdue[]; .overdue_s > 0 and (.status | IN(3, 7, 9, 10) | not))'
expect "overdue --limit 2 gives two" 0 ctl_json overdue --limit 2
check "the two most overdue" jqf "$T/out" '(.overdue | length) == 2 and .limit == 2'
expect "overdue prints a table" 0 ctl overdue
has "with its columns" "$T/out" "MAHOSO"
has "and a count" "$T/out" "overdue, most overdue first"
expect "late --since 2025-01-01 exits 0" 0 ctl_json late --since 2025-01-01 --limit 100000
check "late lists exactly the dossiers finished after their due date ($n_late)" \
	jq_same "$T/out" '[.late[].mahoso] | sort' "$T/deadlines.json" .late
check "late: how late, oldest first, and the since it used" jqf "$T/out" \
	'all(.late[]; .late_s > 0) and [.late[].finished_ms] == ([.late[].finished_ms] | sort) and .since == "2025-01-01T00:00:00Z"'
expect "late without --since exits 0 (the last 30 days)" 0 ctl_json late
check "late without --since starts 30 days ago" jqf "$T/out" ".since_ms > ($now_s - 31 * 86400) * 1000 and .since_ms < ($now_s - 29 * 86400) * 1000"
expect "late prints" 0 ctl late --since 2025-01-01
has "late prints its count" "$T/out" "finished late since"

# ---- malformed changes become dead letters ----------------------------------
feed_op "$TWIN" '{"op":"malformed","count":5}' >/dev/null
feed_op "$SIM_URL" '{"op":"malformed","count":5}' >"$T/mal.json"
check "the simulator appends 5 malformed changes" jqf "$T/mal.json" '.seqs | length == 5'
feed_page "$SIM_URL" "$last_seq" >"$T/feed_mal.json"
# MaHoSo of the malformed changes of a kind, one per line.
mal_m() {
	jq -r --arg k "$1" --slurpfile f "$T/feed_mal.json" \
		'[.kinds, .seqs] | transpose[] | select(.[0] == $k) | .[1] as $s | $f[0].items[] | select(.seq == $s) | .maHoSo' \
		"$T/mal.json"
}
m_status1=$(mal_m status | sed -n 1p)
m_status2=$(mal_m status | sed -n 2p)
m_unit=$(mal_m unit)
m_dates=$(mal_m dates)
last_seq=$(jq -r '.seqs[-1]' "$T/mal.json")
check "the malformed changes have dossiers of their own" test -n "$m_status1" -a -n "$m_status2" -a -n "$m_unit" -a -n "$m_dates"
check "an unknown status, an unknown unit and missing dates become dead letters of what \"change\"" \
	wait_until 10 json_is deadletters "[.dead_letters[] | select(.what == \"change\" and .state == \"dead\") | .mahoso] | sort == ([\"$m_status1\", \"$m_status2\", \"$m_unit\", \"$m_dates\"] | sort)"
# letter ID M: the id of the dead letter of dossier M.
letter() { ctl_json deadletters | jq -r --arg m "$1" '[.dead_letters[] | select(.mahoso == $m)][0].id // empty'; }
l_status1=$(letter "$m_status1")
l_status2=$(letter "$m_status2")
l_unit=$(letter "$m_unit")
l_dates=$(letter "$m_dates")
check "each has a letter id" test -n "$l_status1" -a -n "$l_status2" -a -n "$l_unit" -a -n "$l_dates"
check "a letter says why (the unknown code) and how big its raw change is" \
	json_is deadletters "any(.dead_letters[]; .id == $l_unit and (.reason | test(\"UBND-99999\")) and .raw_bytes > 100)"
check "deadletters counts the open ones" json_is deadletters '.open == 4'
check "deadletters --state dead gives the 4" json_is "deadletters --state dead" '.dead_letters | length == 4'
check "deadletters --state retried gives none yet" json_is "deadletters --state retried" '.dead_letters == []'
check "deadletters --limit 1 gives the newest" json_is "deadletters --limit 1" "(.dead_letters | length) == 1 and .dead_letters[0].id == ([$l_status1, $l_status2, $l_unit, $l_dates] | max)"
expect "deadletters prints a table" 0 ctl deadletters
has "with the dossier" "$T/out" "$m_unit"
has "and the open count" "$T/out" "4 open in all"
check "queue counts them: 4 dead dossiers, 4 open letters, a reason" \
	json_is queue '.by_state.dead == 4 and .dead_letters == 4 and (.by_reason | length) > 0'

# ---- dossier: the timeline of an unmappable change -------------------------
expect "dossier of an unmappable change exits 0" 0 ctl_json dossier "$m_unit"
check "it is dead, its timeline has unmappable then dead" jqf "$T/out" \
	'.state == "dead" and ([.events[].event] | index("unmappable") < index("dead"))'
check "its dead letter carries the raw change" jqf "$T/out" \
	".dead_letters[0].id == $l_unit and (.dead_letters[0].raw | fromjson | .maHoSo == \"$m_unit\")"
citizen=$(jq -r '.dead_letters[0].raw | fromjson | .hoSo.chuHoSo.hoTen // empty' "$T/out")
expect "dossier prints the dossier" 0 ctl dossier "$m_unit"
has "with its state" "$T/out" "[dead]"
has "its timeline" "$T/out" "timeline ("
has "the unmappable event" "$T/out" "unmappable"
has "why" "$T/out" "UBND-99999"
has "and its dead letter" "$T/out" "dead letters"
lacks "but not the citizen's name of the raw change" "$T/out" "$citizen"
expect "dossier of an unknown code fails (1)" 1 ctl dossier 000.00.00.H31-000000-00000
has "saying so" "$T/err" "no dossier 000.00.00.H31-000000-00000"

# ---- retry without a mapping fix: still dead ----------------------------------
expect "retry of a change that still does not map fails (1)" 1 ctl retry "$l_status1"
has "saying why" "$T/err" "CHO_PHE_DUYET"
check "the letter stays open" json_is "deadletters --state dead" "any(.dead_letters[]; .id == $l_status1)"
check "and its dossier dead" json_is "dossier $m_status1" '.state == "dead"'

# ---- drop -------------------------------------------------------------------------
reason="unit UBND-99999 was never created; the dossier is refiled"
expect "drop ID --reason exits 0" 0 ctl drop "$l_unit" --reason "$reason"
has "drop says who dropped it" "$T/out" "dropped by uid:0"
check "the letter is dropped, with who and the reason" \
	json_is "deadletters --state dropped" ".dead_letters[0] | .id == $l_unit and .closed_by == \"uid:0\" and .note == \"$reason\""
check "the dossier's timeline has the drop with its reason" \
	json_is "dossier $m_unit" "any(.events[]; .event == \"dropped\" and .detail.reason == \"$reason\" and .detail.by == \"uid:0\")"
check "the daemon logs who ran drop on which letter" \
	grep -q "control: uid 0 (pid [0-9]*) runs 'drop' on $l_unit" "$T/daemon.log"
sqlite3 -readonly "$T/state/lienthong.db" \
	"SELECT actor || '|' || target || '|' || detail FROM audit WHERE action = 'drop'" >"$T/audit" 2>&1
has "the audit trail has the drop, its actor and target" "$T/audit" "uid:0|$l_unit|"
has "and its reason" "$T/audit" "$reason"
expect "drop of a letter already dropped fails (1)" 1 ctl drop "$l_unit" --reason again
has "saying it is not open" "$T/err" "is not open"
expect "drop of an unknown letter fails (1)" 1 ctl drop 999999 --reason x
has "saying so" "$T/err" "no dead letter 999999"

# ---- retry --all before the fix: nothing maps -------------------------------------
expect "retry --all exits 0" 0 ctl_json retry --all
check "retry --all: none retried, 3 still dead" jqf "$T/out" '.all == true and .retried == 0 and .still_dead == 3'
expect "retry --all prints" 0 ctl retry --all
has "what stays dead" "$T/out" "3 still dead"

# ---- hold and release ----------------------------------------------------------
check "the outbox drains again" wait_until 20 json_is queue '.depth == 0 and .rows_sending == 0'
# The next 30 changes, as the twin has them.
feed_op "$TWIN" '{"op":"generate","count":30}' >"$T/twin_gen.json"
first=$(jq -r '.first_seq' "$T/twin_gen.json")
feed_page "$TWIN" "$((first - 1))" >"$T/twin_feed.json"
m_hold=""
for m in $(jq -r '[.items[].maHoSo] | unique[]' "$T/twin_feed.json"); do
	if json_is "dossier $m" '.state == "active"'; then
		m_hold=$m
		break
	fi
done
check "one of the next changes is of a dossier the outbox knows" test -n "$m_hold"
m_seq=$(jq -r --arg m "$m_hold" '[.items[] | select(.maHoSo == $m) | .seq] | max' "$T/twin_feed.json")
gen_last=$(jq -r '.items[-1].seq' "$T/twin_feed.json")
gen_last_m=$(jq -r '.items[-1].maHoSo' "$T/twin_feed.json")
curl -sf "$SIM_URL/_sim/portal/dossier?mahoso=$m_hold" >"$T/portal0.json"
h0=$(jq '.headers_received' "$T/portal0.json")
p0=$(jq '.progress | length' "$T/portal0.json")
rows0=$(curl -sf "$SIM_URL/_sim/portal/stats" | jq '.progress_rows')
check "the portal has the dossier to hold" test -n "$h0" -a -n "$p0" -a -n "$rows0"

expect "hold MAHOSO exits 0" 0 ctl hold "$m_hold"
has "hold says it is held" "$T/out" "dossier $m_hold is now held"
expect "hold again fails (1)" 1 ctl hold "$m_hold"
has "saying it already is" "$T/err" "is already held"
feed_op "$SIM_URL" '{"op":"generate","count":30}' >"$T/gen.json"
feed_page "$SIM_URL" "$((first - 1))" >"$T/gen_feed.json"
items='[.items[] | [.seq, .maHoSo, .trangThai]]'
check "the simulator generates the same changes as its twin" \
	jq_same "$T/gen_feed.json" "$items" "$T/twin_feed.json" "$items"
check "the held dossier's changes reach the outbox" wait_until 10 received "$m_hold" "$m_seq"
check "and so does the last change" wait_until 10 received "$gen_last_m" "$gen_last"
check "everything but the held dossier goes out: queue depth 1, 1 held" \
	wait_until 10 json_is queue '.depth == 1 and .by_state.held == 1 and .rows_sending == 0'
sleep 1
check "the other dossiers' rows reached the portal" sim_json /_sim/portal/stats ".progress_rows > $rows0"
check "nothing new of the held dossier reached the portal" \
	portal "$m_hold" ".headers_received == $h0 and (.progress | length) == $p0"
check "dossier shows it held, with work waiting" json_is "dossier $m_hold" \
	'.state == "held" and (.rows_pending > 0 or .header_version > .header_sent_version) and any(.events[]; .event == "held" and .detail.by == "uid:0")'
expect "queue prints the held dossier" 0 ctl queue
has "as held" "$T/out" "1 held"
header_citizen=$(ctl_json dossier "$m_hold" | jq -r '.header.ChuHoSo // empty')
expect "dossier prints the held dossier" 0 ctl dossier "$m_hold"
has "its state" "$T/out" "[held]"
has "the hold in its timeline" "$T/out" "by uid:0"
has "its progress rows" "$T/out" "progress rows:"
lacks "but not the citizen's name of its header" "$T/out" "$header_citizen"

expect "release MAHOSO exits 0" 0 ctl release "$m_hold"
has "release says it is active again" "$T/out" "released: now active"
check "its changes reach the portal" wait_until 10 portal "$m_hold" \
	".headers_received > $h0 or (.progress | length) > $p0"
check "the outbox drains" wait_until 10 json_is queue '.depth == 0 and .by_state.held == 0'
check "no progress row reached the portal twice" sim_json /_sim/portal/stats '.duplicates == 0'
expect "release again fails (1)" 1 ctl release "$m_hold"
has "saying it is not held" "$T/err" "is not held"

# ---- a mapping fix, a reload, and retry sends it -------------------------------------
jq '.entries += [{"from": "CHO_PHE_DUYET", "to": 4, "note": "test: a new provincial status"}]' \
	"$ROOT/mappings/dossier-status.json" >"$T/mappings/dossier-status.json"
expect "reload with the fixed mapping" 0 ctl reload
expect "retry ID now exits 0" 0 ctl retry "$l_status2"
has "retry says the letter was retried" "$T/out" "dead letter $l_status2 retried"
check "the letter is retried by uid:0" \
	json_is "deadletters --state retried" "any(.dead_letters[]; .id == $l_status2 and .closed_by == \"uid:0\")"
check "its dossier reaches the portal" wait_until 10 portal "$m_status2" '.header != null'
check "and is active, with a retried event" json_is "dossier $m_status2" '.state == "active" and any(.events[]; .event == "retried")'
expect "retry --all after the fix" 0 ctl_json retry --all
check "retries the other status letter; missing dates stay dead" jqf "$T/out" '.retried == 1 and .still_dead == 1'
check "that one reaches the portal too" wait_until 10 portal "$m_status1" '.header != null'
expect "retry of a retried letter fails (1)" 1 ctl retry "$l_status2"
has "saying it is not open" "$T/err" "is not open"

# ---- usage errors ----------------------------------------------------------------
expect "retry without an ID is a usage error (2)" 2 ctl retry
has "showing the usage" "$T/err" "usage: lienthongctl retry ID|--all"
expect "retry with an ID and --all is a usage error (2)" 2 ctl retry 1 --all
expect "drop without --reason is a usage error (2)" 2 ctl drop "$l_dates"
has "saying the reason is required" "$T/err" "option --reason is required"
expect "drop with an empty reason is a usage error (2)" 2 ctl drop "$l_dates" --reason ""
expect "drop of a non-number fails (1)" 1 ctl drop x --reason y
has "with the usage" "$T/err" "usage: drop ID --reason TEXT"
expect "hold without MAHOSO is a usage error (2)" 2 ctl hold
expect "hold of an unknown dossier fails (1)" 1 ctl hold 000.00.00.H31-000000-00000
has "saying there is no such dossier" "$T/err" "no dossier 000.00.00.H31-000000-00000 (ENOENT)"
expect "retry of an unknown letter fails (1)" 1 ctl retry 999999
has "saying so" "$T/err" "no dead letter 999999 (ENOENT)"
expect "deadletters --state bogus fails (1)" 1 ctl deadletters --state bogus
has "naming the states" "$T/err" "expected dead (open), retried or dropped"
expect "late --since bogus fails (1)" 1 ctl late --since bogus
expect "overdue --limit 0 fails (1)" 1 ctl overdue --limit 0
check "the dead letter of missing dates is still open" json_is "deadletters --state dead" "[.dead_letters[].id] == [$l_dates]"

# ---- the mismatch workflow: ack, resolve, waive, reopen ---------------------------
# Two overdue dossiers' mismatches: every deadline sweep (one at the start
# of each pass, so after a reload) finds them again.
ctl_json mismatches --kind dossier.overdue --state open --limit 2 >"$T/mo.json"
mo=$(jq -r '.mismatches[0].id // empty' "$T/mo.json")
mo2=$(jq -r '.mismatches[1].id // empty' "$T/mo.json")
check "two overdue dossiers are in the mismatch log" test -n "$mo" -a -n "$mo2"
expect "ack ID acknowledges a mismatch (0)" 0 ctl ack "$mo" --note "đang gửi phiếu xin lỗi"
has "saying who, and the note" "$T/out" "mismatch $mo acknowledged by uid:0: đang gửi phiếu xin lỗi"
check "its state is acknowledged, by uid:0" json_is "mismatch $mo" '.state == "acknowledged" and .state_by == "uid:0"'
expect "a second ack fails (1)" 1 ctl ack "$mo"
has "saying it already is" "$T/err" "mismatch $mo is already acknowledged"
expect "resolve without --note is a usage error (2)" 2 ctl resolve "$mo"
expect "resolve with an empty note is a usage error (2)" 2 ctl resolve "$mo" --note ""
expect "a note of blanks is refused (1)" 1 ctl resolve "$mo" --note " "
has "saying the note is required" "$T/err" "the note is required"
expect "resolve ID --note resolves it (0)" 0 ctl resolve "$mo" --note "đã hẹn lại ngày trả"
check "its history: opened, acknowledged, resolved, each with who and the note" json_is "mismatch $mo" \
	'[.events[].event] == ["opened", "acknowledged", "resolved"] and .events[1].note == "đang gửi phiếu xin lỗi" and .events[2].note == "đã hẹn lại ngày trả" and .events[2].actor == "uid:0"'
check "mismatches --state resolved lists it" json_is "mismatches --state resolved --kind dossier.*" "any(.mismatches[]; .id == $mo)"
expect "waive ID --note waives another (0)" 0 ctl waive "$mo2" --note "hồ sơ giấy, trả trực tiếp"
check "that one is waived" json_is "mismatch $mo2" '.state == "waived" and .state_note == "hồ sơ giấy, trả trực tiếp"'
expect "a reload starts a new pass, whose sweep finds both again" 0 ctl reload
check "the resolved mismatch reopens, keeping its history" wait_until 15 json_is "mismatch $mo" \
	'.state == "open" and [.events[].event] == ["opened", "acknowledged", "resolved", "reopened"]'
check "the waived one stays waived" json_is "mismatch $mo2" '.state == "waived" and ([.events[].event] == ["opened", "waived"])'
expect "waive of an unknown mismatch fails (1)" 1 ctl waive 999999 --note x
has "saying so" "$T/err" "no mismatch 999999"
expect "ack of a non-number fails (1)" 1 ctl ack x
has "with the usage" "$T/err" "usage: ack ID [--note TEXT]"
sqlite3 -readonly "$T/state/lienthong.db" \
	"SELECT actor || '|' || action || '|' || target FROM audit WHERE action IN ('ack', 'resolve', 'waive')" >"$T/audit" 2>&1
has "the audit trail has the ack" "$T/audit" "uid:0|ack|$mo"
has "the resolve" "$T/audit" "uid:0|resolve|$mo"
has "and the waive" "$T/audit" "uid:0|waive|$mo2"

# ---- a reader may read, not change ----------------------------------------------
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
	expect "a reader may see the queue" 0 as_nobody "$BIN/lienthongctl" --socket "$T/ctl.sock" queue
	expect "and a dossier" 0 as_nobody "$BIN/lienthongctl" --socket "$T/ctl.sock" dossier "$m_hold"
	expect "but not hold one (1)" 1 as_nobody "$BIN/lienthongctl" --socket "$T/ctl.sock" hold "$m_hold"
	has "refused with EPERM" "$T/err" "EPERM"
	expect "nor drop a letter (1)" 1 as_nobody "$BIN/lienthongctl" --socket "$T/ctl.sock" drop "$l_dates" --reason x
	expect "nor retry (1)" 1 as_nobody "$BIN/lienthongctl" --socket "$T/ctl.sock" retry --all
	expect "nor acknowledge a mismatch (1)" 1 as_nobody "$BIN/lienthongctl" --socket "$T/ctl.sock" ack "$mo"
	check "the refused drop left the letter open" json_is "deadletters --state dead" "[.dead_letters[].id] == [$l_dates]"
else
	pass "a reader may read, not change # SKIP not root or no setpriv"
fi

check "lienthongd is still running" kill -0 "$D_PID"
finish
