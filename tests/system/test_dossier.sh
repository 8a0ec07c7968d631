#!/bin/sh
# System test of the dossier flow (issue 4; notes/dossier-spec.md §5):
# lienthongd reads the simulator's provincial change feed and pushes every
# change to the simulated national portal, in order per dossier, exactly
# once, through outages and bad answers.
#
#   - every change reaches the portal (rows == changes, no duplicate, one
#     portal dossier per feed dossier); per dossier the rows come in feed
#     order and the header carries the latest status;
#   - create vs update: a dossier's first header is a create, later ones
#     updates; a dossier the portal already has ("đã tồn tại") is updated,
#     not dead-lettered;
#   - coalescing: while the portal is away, several changes of a dossier
#     end in one header (the latest) and every row, in order;
#   - batching: header_batch 3 and progress_batch 7 bound the requests;
#   - faults: a 500/503 storm, HTML and cut JSON bodies, answers wrapped in
#     "message", expired sessions (one re-login), 429 with Retry-After,
#     answers later than the connector's timeout (rows in doubt, applied:
#     found by TraCuuHoSo, not resent, also when the look-ups fail for a
#     while), hangs (in doubt, not applied: sent again), a broken feed page
#     (the cursor stays), broken changes (dead letters "change",
#     dossier.unmappable), oversize fields (truncated, dossier.truncated), a
#     portal refusal in a 200 answer (dead letter + dossier.rejected, the
#     rest of the batch delivered);
#   - deadlines: dossier.overdue flags exactly the open dossiers past due,
#     and clears the flag of those that finish; dossier.late the dossiers
#     finished after their due date;
#   - a reload in the middle of a run loses and duplicates nothing;
#   - a late finish stored just before a pass ends is still recorded late.
#
# The flow's operator commands (queue, dossier, deadletters, retry, drop,
# hold, ...) are tested by test_dossier_ops.sh; crashes by
# test_dossier_crash.sh.
#
# Usage: BUILD=build sh tests/system/test_dossier.sh   (needs curl and jq)
. "$(dirname "$0")/lib.sh"

no_proxy=127.0.0.1,localhost
NO_PROXY=$no_proxy
export no_proxy NO_PROXY

NOW=2025-11-20T10:00:00+07:00
FEED=/provincial/api/v1/ho-so/thay-doi

# ---- helpers ----------------------------------------------------------------------

# jq definitions shared by the checks: the national status of a provincial
# one, and a feed change as the portal's progress row key.
JQDEFS='def code: {"MOI_DANG_KY":1,"DA_TIEP_NHAN":2,"TU_CHOI_TIEP_NHAN":3,"DANG_XU_LY":4,
	"YEU_CAU_BO_SUNG":5,"NGHIA_VU_TAI_CHINH":6,"CONG_DAN_RUT":7,"DUNG_XU_LY":8,
	"DA_XU_LY_XONG":9,"DA_TRA_KET_QUA":10}[.];
def ymd: .[0:4] + .[5:7] + .[8:10] + .[11:13] + .[14:16] + .[17:19];
def rowkey: {t: (.buocXuLy.thoiDiem // "" | ymd), s: (.trangThai | code | tostring)};
def finished: (.trangThai | code) as $c | [3, 7, 9, 10] | index([$c]) != null;'

# PROJ: what the checks use of a change (the feed is ~2 KB a change).
PROJ='{seq, maHoSo, thoiDiem, trangThai, buocXuLy: {thoiDiem: .buocXuLy.thoiDiem},
	hoSo: {ngayHenTra: .hoSo.ngayHenTra, maThuTuc: .hoSo.maThuTuc, ngayTiepNhan: .hoSo.ngayTiepNhan}}'
# feed_all: brings $T/feed up to date: every change of the feed (projected),
# one a line, in seq order (only what is new is read).
feed_all() { feed_fetch "$T/feed" "$PROJ"; }
# jqs FILE EXPR: FILE is not empty and EXPR holds on its slurped lines.
jqs() { [ -s "$1" ] && jq -e -s "$JQDEFS $2" "$1" >/dev/null; }
# jqv FILE EXPR: prints EXPR of FILE's slurped lines.
jqv() { jq -r -s "$JQDEFS $2" "$1"; }
# portal EXPR: the portal's stats (/_sim/portal/stats) answer and EXPR holds.
portal() { sim_json /_sim/portal/stats "$1"; }
pstat() { curl -sf "$SIM_URL/_sim/portal/stats" | jq -r "$1"; }
# flow_is EXPR: the dossier flow's detail in `lienthongctl status` satisfies EXPR.
flow_is() { status_is "[.flows[] | select(.name == \"dossier\")][0].detail | $1"; }
flow_val() { ctl_json status | jq -r "[.flows[] | select(.name == \"dossier\")][0].detail | $1"; }
feed_op() { curl -sf -X POST -d "$1" "$SIM_URL/_sim/feed"; }
# mm KIND [FILTERS]: the mismatches of KIND as a sorted JSON array of their dossiers.
mm() {
	_k=$1
	shift
	ctl_json mismatches --kind "$_k" --limit 100000 "$@" | jq -c '[.mismatches[].dossier] | sort'
}

# SKIP: JSON array of the dossiers whose rows never reach the portal (not
# mappable, or refused for good); their changes are not expected there.
SKIP='[]'
UNMAPPABLE='[]'
# expected_rows / expected_dossiers: from the feed in $T/feed.
expected_rows() { jqv "$T/feed" "[.[] | select(.maHoSo as \$m | $SKIP | index([\$m]) | not)] | length"; }
expected_dossiers() { jqv "$T/feed" "[.[].maHoSo] | unique - $UNMAPPABLE | length"; }

# delivered N: the portal holds N rows and the flow has read everything and
# has nothing pending, sending or in flight.
delivered() {
	portal ".progress_rows >= $1" &&
		flow_is '.pass.caught_up == true and .pass.in_flight == 0 and .pass.in_doubt == 0 and
			.queue.rows_pending == 0 and .queue.rows_sending == 0'
}
# settle SECONDS: refetches the feed and waits until everything of it is delivered.
settle() {
	feed_all || return 1
	EXP=$(expected_rows)
	wait_until "$1" delivered "$EXP"
}
# exact: the portal holds exactly the expected rows, no duplicate, one
# dossier per mappable feed dossier.
exact() {
	portal ".progress_rows == $EXP and .duplicates == 0 and .dossiers == $(expected_dossiers)"
}

# order_ok M...: for each dossier, the portal's rows are the feed's changes
# of it in feed order, and its header carries the latest status.
order_ok() {
	jqv "$T/feed" 'group_by(.maHoSo)[] | {m: .[0].maHoSo, rows: [.[] | rowkey],
		last: (.[-1].trangThai | code | tostring)} | tojson' >"$T/byd" || return 1
	for _m in "$@"; do
		curl -sf "$SIM_URL/_sim/portal/dossier?mahoso=$_m" >"$T/pd" || { echo "$_m: no answer"; return 1; }
		grep -F "{\"m\":\"$_m\"," "$T/byd" >"$T/fd"
		if ! jq -e -n --slurpfile p "$T/pd" --slurpfile f "$T/fd" '
			($f | length) == 1 and ($f[0].rows | length) > 0 and
			[$p[0].progress[] | {t: .ThoiDiemXuLy, s: (.TrangThai | tostring)}] == $f[0].rows and
			($p[0].header.TrangThaiHoSo | tostring) == $f[0].last' >/dev/null; then
			echo "$_m: portal rows/header differ from the feed"
			jq -c '{h: .header.TrangThaiHoSo, n: .headers_received,
				rows: [.progress[] | [.ThoiDiemXuLy, .TrangThai]]}' "$T/pd"
			cat "$T/fd"
			return 1
		fi
	done
}
# order_all: over every dossier at once, from what the portal received in
# arrival order (/_sim/stats records of CapNhatTienDoHoSoMC and
# DongBoHoSoMC; a refused batch's items are received again when resent, so
# each row or header counts where it was last received): each dossier's
# rows are its feed changes in feed order, and its last header carries the
# status of its last change. Prints the dossiers that differ.
order_all() {
	curl -sf "$SIM_URL/_sim/stats?service=CapNhatTienDoHoSoMC" >"$T/recv_p" || return 1
	curl -sf "$SIM_URL/_sim/stats?service=DongBoHoSoMC" >"$T/recv_h" || return 1
	jq -e '.received_dropped == 0' "$T/recv_p" "$T/recv_h" >/dev/null || { echo "records dropped"; return 1; }
	jq -e -n --slurpfile f "$T/feed" --slurpfile p "$T/recv_p" --slurpfile h "$T/recv_h" \
		--argjson skip "$SKIP" --argjson unm "$UNMAPPABLE" "$JQDEFS
	def last_seen(k): to_entries | group_by(.value | k) | map(max_by(.key)) | sort_by(.key) | map(.value);
	(\$f | group_by(.maHoSo) | map({key: .[0].maHoSo, value: {rows: map(rowkey | [.t, .s]),
		last: (.[-1].trangThai | code | tostring)}}) | from_entries) as \$want |
	(\$p[0].received | last_seen([.MaHoSo, .ThoiDiemXuLy, (.TrangThai | tostring)]) |
		group_by(.MaHoSo) | map({key: .[0].MaHoSo, value: map([.ThoiDiemXuLy, (.TrangThai | tostring)])}) |
		from_entries) as \$rows |
	(\$h[0].received | last_seen(.MaHoSo) | map({key: .MaHoSo, value: (.TrangThaiHoSo | tostring)}) |
		from_entries) as \$hdr |
	[\$want | to_entries[] | select(.key as \$m | \$unm | index([\$m]) | not) |
		select((.key as \$m | \$skip | index([\$m]) | not) and \$rows[.key] != .value.rows
			or \$hdr[.key] != .value.last) | .key] as \$bad |
	if \$bad == [] then true else (\$bad[0:10] | join(\" \") | \"differ: \" + . | stderr | false) end" \
		>/dev/null
}
# sample N: N dossiers of the feed with the most changes, and a few others.
sample() {
	jqv "$T/feed" "[.[].maHoSo] | group_by(.) | map({m: .[0], n: length}) |
		map(select(.m as \$m | $SKIP | index([\$m]) | not)) |
		(sort_by(-.n)[0:$1] + .[0:3] + .[-3:]) | map(.m) | unique | .[]"
}
login() {
	curl -s -X POST -d '{"username":"lienthong","password":"secret"}' "$SIM_URL/auth" |
		jq -r '.session // empty'
}
integ() { # SESSION SERVICE MEMBERS -> $T/ans
	printf '{"session":"%s","service":"%s"%s}' "$1" "$2" "$3" >"$T/req"
	curl -s -o "$T/ans" -X POST --data-binary @"$T/req" "$SIM_URL/integration"
}
# overdue_expected: the mappable dossiers of $T/feed whose latest change is
# not finished (3, 7, 9, 10) and that have a due date (all in 2025: past).
overdue_expected() {
	jqv "$T/feed" "group_by(.maHoSo) | map(last) |
		map(select((finished | not) and .hoSo.ngayHenTra != null) | .maHoSo) - $UNMAPPABLE | sort"
}
# late_expected: dossiers whose first change to 9 or 10 came after the due date.
late_expected() {
	jqv "$T/feed" "group_by(.maHoSo) | map(. as \$d |
		[\$d[] | select((.trangThai | code) == 9 or (.trangThai | code) == 10)][0] as \$f |
		select(\$f != null and \$d[-1].hoSo.ngayHenTra != null and
			(\$f.thoiDiem | .[0:19]) > (\$d[-1].hoSo.ngayHenTra | .[0:19])) | \$d[0].maHoSo) | sort"
}
# same_json GOT WANT: two sorted JSON arrays are equal; else prints the difference.
same_json() {
	[ -n "$1" ] && [ "$1" = "$2" ] && return 0
	jq -c -n --argjson g "${1:-null}" --argjson w "$2" \
		'{missing: ($w - ($g // [])), unexpected: (($g // []) - $w), got: ($g | length), expected: ($w | length)}'
	return 1
}

elapsed() { echo $(($(date +%s) - T0)); }
T0=$(date +%s)

[ -x "$BIN/lienthong-sim" ] || { fail "$BIN/lienthong-sim not built"; finish; exit 1; }
sim_start --dossiers 200 --dossier-now "$NOW" || { fail "simulator did not start"; finish; exit 1; }

# Mappings: the tree's, plus "progress-raw" (NoiDungXuLy not truncated) to
# make the portal refuse a row in a 200 answer.
mkdir -p "$T/mappings"
cp mappings/*.json "$T/mappings/"
jq '.name = "progress-raw" | .fields.NoiDungXuLy.transform = ["nfc", "trim"]' \
	mappings/progress.json >"$T/mappings/progress-raw.json"

write_base_conf "$T/base.conf"
sed -i "s|^health_interval = 1s|health_interval = 1s\nmappings_dir = $T/mappings|" "$T/base.conf"
dossier_conf "$T/base.conf" "deadline_interval = 1s
retry_max = 1s" "header_batch = 3
progress_batch = 7
timeout = 1s
breaker_open = 1s"
cp "$T/base.conf" "$T/d.conf"
cp "$T/base.conf" "$T/raw.conf"
echo "progress_mapping = progress-raw" >>"$T/raw.conf"
cp "$T/base.conf" "$T/tuned.conf"
echo "max_in_flight = 500" >>"$T/tuned.conf"

feed_all || fail "reading the feed"
N0=$(wc -l <"$T/feed")
D0=$(jqv "$T/feed" '[.[].maHoSo] | unique | length')
check "the feed holds the stream's changes ($N0 changes of $D0 dossiers)" test "$N0" -gt "$D0"

# ---- a dossier the portal already has (another system synced it) ---------------------
S=$(login)
check "a portal session for the test" test -n "$S"
MPRE=$(head -n 1 "$T/feed" | jq -r .maHoSo)
HPRE=$(head -n 1 "$T/feed" | jq -c "$JQDEFS {MaHoSo: .maHoSo, MaTTHC: .hoSo.maThuTuc,
	TrangThaiHoSo: 2, NgayTiepNhan: (.hoSo.ngayTiepNhan | ymd)}")
integ "$S" DongBoHoSoMC ",\"isUpdating\":\"False\",\"data\":[$HPRE]"
check "dossier $MPRE created on the portal beforehand" jq -e '.error_code == 0' "$T/ans"

# ---- 1. the first sync -------------------------------------------------------------------
daemon_start "$T/d.conf" || { fail "daemon did not start"; finish; exit 1; }
check "first sync: the flow catches up" settle 30
check "first sync: every change of the feed reaches the portal" wait_until 5 exact
check "first sync: no duplicate row" portal '.duplicates == 0'
check "first sync: nothing refused for good (no dead letter, no dossier.rejected)" sh -c "
	[ \"\$($BIN/lienthongctl --socket $T/ctl.sock --json status |
		jq -r '[.flows[] | select(.name == \"dossier\")][0].detail.queue.dead_letters')\" = 0 ] &&
	[ \"\$($BIN/lienthongctl --socket $T/ctl.sock --json mismatches --kind dossier.rejected |
		jq -r '.mismatches | length')\" = 0 ]"
check "create vs update: each dossier created exactly once; ours was updated" \
	portal ".creates == .dossiers and .dossiers == $D0 and .updates >= 1 and
		.headers_received == .creates + .updates"
check "the dossier that existed: updated to its latest status, its rows delivered" order_ok "$MPRE"
check "the dossier that existed: two headers (ours, the flow's update)" \
	sim_json "/_sim/portal/dossier?mahoso=$MPRE" '.headers_received == 2'
# shellcheck disable=SC2046 # one word per dossier
check "per dossier, rows in feed order and the header at the latest status (sample)" \
	order_ok $(sample 8)
cnt() { curl -sf "$SIM_URL/_sim/stats?service=$1" | jq -r "$2"; }
PB_REQ=$(cnt CapNhatTienDoHoSoMC .by_service.CapNhatTienDoHoSoMC.count)
PB_REC=$(cnt CapNhatTienDoHoSoMC .received_count)
HB_REQ=$(cnt DongBoHoSoMC .by_service.DongBoHoSoMC.count)
HB_REC=$(cnt DongBoHoSoMC .received_count)
check "progress_batch 7: $PB_REC rows in $PB_REQ requests, at most 7 a request, batched" \
	sh -c "[ $PB_REQ -gt 0 ] && [ $PB_REC -le $((PB_REQ * 7)) ] && [ $PB_REC -ge $N0 ] &&
		[ $PB_REQ -lt $N0 ]"
check "header_batch 3: $HB_REC headers in $HB_REQ requests, at most 3 a request" \
	sh -c "[ $HB_REQ -gt 0 ] && [ $HB_REC -le $((HB_REQ * 3)) ] && [ $HB_REC -ge $D0 ] &&
		[ $HB_REQ -lt $D0 ]"

# ---- 2. deadlines ----------------------------------------------------------------------------
OVER0=$(overdue_expected | jq -c .)
over_is() { same_json "$(mm dossier.overdue --state open)" "$1"; }
check "dossier.overdue flags exactly the open dossiers past due ($(echo "$OVER0" | jq length))" \
	wait_until 5 over_is "$OVER0"
check "there are overdue dossiers to flag" sh -c "[ $(echo "$OVER0" | jq length) -gt 10 ]"
LATE0=$(late_expected | jq -c .)
late_is() { same_json "$(mm dossier.late)" "$1"; }
check "dossier.late lists exactly the dossiers finished after their due date ($(echo "$LATE0" | jq length))" \
	wait_until 5 late_is "$LATE0"
check "overdue mismatches carry the due date and the agency" sh -c "
	$BIN/lienthongctl --socket $T/ctl.sock --json mismatches --kind dossier.overdue --limit 1 |
	jq -e '(.mismatches | length) == 1 and (.mismatches[0].detail | fromjson | .due != null) and
		.mismatches[0].agency != null' >/dev/null"
echo "# $(elapsed) s: first sync and deadlines checked"

# ---- 3. coalescing: the portal away while a dossier changes several times ---------------
P0=$(pstat .progress_rows)
sim_faults '{"path":"/integration","down":true}'
G=$(feed_op '{"op":"generate","count":600}')
GL=$(echo "$G" | jq -r '.last_seq // 0')
GF=$(echo "$G" | jq -r '.first_seq // 0')
check "600 changes generated" test "$GL" -gt 0
check "the flow reads them while the portal is away" wait_until 20 flow_is ".pass.cursor == \"$GL\""
feed_all || fail "reading the feed"
# A dossier the portal has already, with the most changes among the new ones.
MC=$(jqv "$T/feed" "[.[] | select(.seq < $GF) | .maHoSo] as \$old |
	[.[] | select(.seq >= $GF and (.maHoSo as \$m | \$old | index([\$m]))) | .maHoSo] |
	group_by(.) | map({m: .[0], n: length}) | sort_by(-.n) | .[0] | \"\\(.m) \\(.n)\"")
NC=${MC#* }
MC=${MC% *}
check "a known dossier got at least 3 of the new changes ($MC: $NC)" sh -c "[ '${NC:-0}' -ge 3 ]"
HR0=$(curl -sf "$SIM_URL/_sim/portal/dossier?mahoso=$MC" | jq -r .headers_received)
check "nothing reached the portal while it was away" portal ".progress_rows == $P0"
sim_faults '{"path":"/integration","reset":true}'
check "after the portal is back every change arrives" settle 30
check "... exactly once" exact
check "coalescing: $NC changes of $MC made one header update ($HR0 -> 1 more)" \
	sim_json "/_sim/portal/dossier?mahoso=$MC" ".headers_received == $HR0 + 1"
check "coalescing: every row of $MC arrived, in order, the header at the latest status" order_ok "$MC"
check "update vs create: new dossiers created once, known ones updated" \
	portal ".creates == .dossiers and .headers_received == .creates + .updates"
echo "# $(elapsed) s: coalescing checked"

# ---- 4. faults ---------------------------------------------------------------------------------
# 4a. A 500/503 storm on the portal, then recovery.
F0=$(sim_stat '.faults.error + .faults.fail_next')
sim_faults '{"path":"/integration","error_rate":0.5,"fail_next":15}'
feed_op '{"op":"generate","count":300}' >/dev/null
sleep 2
# failure reasons are a few stable classes, not the connector's texts with
# times and batch sizes (each of which would be a "reason" of its own)
check "500/503 storm: queue's by_reason names stable classes" json_is queue '.by_reason | keys |
	all(IN("portal circuit open", "portal error (HTTP 5xx)", "rate limited (HTTP 429)",
		"refused by the gateway (HTTP 4xx)", "answer not JSON", "timeout", "cannot log in",
		"not submitted", "portal did not answer clearly", "unknown to the portal"))'
sim_faults '{"path":"/integration","reset":true}'
check "500/503 storm: the portal answered errors" sh -c "[ $(sim_stat '.faults.error + .faults.fail_next') -gt $((F0 + 10)) ]"
check "500/503 storm: every change arrives after it" settle 30
check "500/503 storm: exactly once" exact

# 4b. HTML pages and JSON cut short in 200 answers.
F0=$(sim_stat .faults.malformed)
sim_faults '{"path":"/integration","malformed_rate":1}'
feed_op '{"op":"generate","count":100}' >/dev/null
sleep 1.5
sim_faults '{"path":"/integration","reset":true}'
check "HTML / cut JSON: the portal answered so" sh -c "[ $(sim_stat .faults.malformed) -ge $((F0 + 2)) ]"
check "HTML / cut JSON: every change arrives after it" settle 30
check "HTML / cut JSON: exactly once" exact
check "HTML / cut JSON: nothing taken for a refusal (no dead letter)" flow_is '.queue.dead_letters == 0'

# 4c. Answers wrapped as a JSON string in "message" (some adapters do).
sim_faults '{"path":"/integration","wrap_message":true}'
feed_op '{"op":"generate","count":100}' >/dev/null
check "wrapped answers: every change arrives" settle 30
check "wrapped answers: exactly once" exact
sim_faults '{"path":"/integration","reset":true}'

# 4d. Sessions expire: one re-login, nothing lost.
L0=$(sim_stat .logins)
E0=$(sim_stat .sessions_expired_answers)
curl -sf -X POST "$SIM_URL/_sim/expire-sessions" >/dev/null
feed_op '{"op":"generate","count":100}' >/dev/null
check "expired session: every change arrives" settle 30
check "expired session: exactly once" exact
check "expired session: the portal said so" sh -c "[ $(sim_stat .sessions_expired_answers) -gt $E0 ]"
check "expired session: one re-login ($L0 -> $(sim_stat .logins))" sh -c "[ $(sim_stat .logins) -eq $((L0 + 1)) ]"
check "expired session: no dead letter" flow_is '.queue.dead_letters == 0'

# 4e. 429 with Retry-After: 1 s. Each request waits for it between its
# attempts: in 2 s a header batch is tried at most 3 times (without it,
# backoff_base 50ms would make that 10 and more).
F0=$(sim_stat .faults.rate_limited)
sim_faults '{"path":"/integration","rate_limit_rate":1,"retry_after_s":1}'
G=$(feed_op '{"op":"generate","count":100}')
sleep 2
F1=$(sim_stat .faults.rate_limited)
sim_faults '{"path":"/integration","reset":true}'
check "429: the portal refused requests ($((F1 - F0)) in 2 s)" sh -c "[ $F1 -gt $F0 ]"
check "429: every change arrives after it" settle 30
check "429: exactly once" exact
GD=$(jqv "$T/feed" "[.[] | select(.seq >= $(echo "$G" | jq -r '.first_seq // 0') and
	.seq <= $(echo "$G" | jq -r '.last_seq // 0')) | .maHoSo] | unique | length")
check "429: Retry-After honoured: $((F1 - F0)) refusals for $GD dossiers (at most 3 per batch of 3)" \
	sh -c "[ $GD -gt 0 ] && [ $((F1 - F0)) -le $((3 * ((GD + 2) / 3) + 8)) ]"

# 4f. Answers later than the connector's timeout (1 s): the portal applied
# the rows, the daemon cannot know: in doubt, looked up, not sent again.
# The look-ups fail too at first: nothing of those dossiers goes out meanwhile.
Q0=$(sim_stat '.by_service.TraCuuHoSo.count // 0')
TQ5=$(sim_stat '.by_service.TraCuuHoSo.status["500"] // 0')
FOUND0=$(grep -Ec 'dossier [^ ]+: [1-9][0-9]* rows? in doubt found on the portal' "$T/daemon.log")
sim_faults '{"service":"CapNhatTienDoHoSoMC","latency_ms":1500}'
sim_faults '{"service":"TraCuuHoSo","error_rate":1}'
feed_op '{"op":"generate","count":60}' >/dev/null
lookups_failed() { sim_is ".by_service.TraCuuHoSo.status[\"500\"] >= $TQ5 + 1"; }
check "late answers: the look-ups of rows in doubt fail for a while" wait_until 20 lookups_failed
check "late answers: no duplicate while the look-ups fail" portal '.duplicates == 0'
sim_faults '{"service":"TraCuuHoSo","reset":true}'
found_some() { [ "$(grep -Ec 'dossier [^ ]+: [1-9][0-9]* rows? in doubt found on the portal' "$T/daemon.log")" -gt "$FOUND0" ]; }
check "late answers: rows in doubt are looked up and found on the portal" wait_until 20 found_some
sim_faults '{"service":"CapNhatTienDoHoSoMC","reset":true}'
check "late answers: TraCuuHoSo was asked" sh -c "[ $(sim_stat '.by_service.TraCuuHoSo.count // 0') -gt $Q0 ]"
check "late answers: every change arrives" settle 30
check "late answers: exactly once (rows found are not sent again)" exact

# 4g. Hangs past the timeout: the portal applied nothing; looked up, sent again.
AGAIN0=$(grep -Ec 'in doubt found on the portal, [1-9][0-9]* to send again' "$T/daemon.log")
sim_faults '{"service":"CapNhatTienDoHoSoMC","hang_rate":1,"hang_ms":3000}'
feed_op '{"op":"generate","count":60}' >/dev/null
resent_some() { [ "$(grep -Ec 'in doubt found on the portal, [1-9][0-9]* to send again' "$T/daemon.log")" -gt "$AGAIN0" ]; }
check "hangs: rows in doubt are looked up, absent, to be sent again" wait_until 20 resent_some
sim_faults '{"service":"CapNhatTienDoHoSoMC","reset":true}'
check "hangs: every change arrives" settle 30
check "hangs: exactly once" exact
echo "# $(elapsed) s: portal faults checked"

# 4h. A broken feed page (HTML, cut JSON): the cursor does not move.
C0=$(flow_val .pass.cursor)
P0=$(pstat .progress_rows)
F0=$(sim_stat .faults.malformed)
sim_faults "{\"path\":\"$FEED\",\"malformed_rate\":1}"
feed_op '{"op":"generate","count":100}' >/dev/null
sleep 2
check "broken feed page: answered so at least twice" sh -c "[ $(sim_stat .faults.malformed) -ge $((F0 + 2)) ]"
check "broken feed page: the cursor stays at $C0" flow_is ".pass.cursor == \"$C0\""
check "broken feed page: nothing new pushed" portal ".progress_rows == $P0"
check "broken feed page: no dossier.malformed or unmappable taken from it" sh -c "
	[ \"\$($BIN/lienthongctl --socket $T/ctl.sock --json mismatches --kind 'dossier.*' |
		jq -r '[.mismatches[] | select(.kind == \"dossier.malformed\" or .kind == \"dossier.unmappable\")] | length')\" = 0 ]"
sim_faults "{\"path\":\"$FEED\",\"reset\":true}"
check "broken feed page: once it clears every change arrives" settle 30
check "broken feed page: exactly once" exact

# ---- 5. broken and oversize changes --------------------------------------------------------------
feed_op '{"op":"malformed","count":5}' >"$T/mal"
check "5 broken changes appended" jq -e '.ok == true and (.seqs | length) == 5' "$T/mal"
feed_op '{"op":"generate","count":50}' >/dev/null
feed_all || fail "reading the feed"
jq -c '[.seqs, .kinds] | transpose | map({seq: .[0], kind: .[1]})' "$T/mal" >"$T/malk"
MALM=$(jqv "$T/feed" "[.[] | {seq, m: .maHoSo}] as \$all | $(cat "$T/malk") |
	map(. as \$k | \$k + {m: (\$all[] | select(.seq == \$k.seq) | .m)})")
UNMAPPABLE=$(echo "$MALM" | jq -c '[.[] | select(.kind != "oversize") | .m] | sort')
MOVER=$(echo "$MALM" | jq -r '[.[] | select(.kind == "oversize") | .m][0] // empty')
SKIP=$UNMAPPABLE
check "broken changes: the unmappable ones are known ($UNMAPPABLE)" sh -c "[ $(echo "$UNMAPPABLE" | jq length) -eq 4 ]"
check "broken changes: the rest flows" settle 30
check "broken changes: exactly once" exact
check "broken changes: one dead letter \"change\" each" flow_is ".queue.dead_letters == 4"
check "broken changes: dossier.unmappable for each" sh -c "
	[ \"\$($BIN/lienthongctl --socket $T/ctl.sock --json mismatches --kind dossier.unmappable --limit 100 |
		jq -c '[.mismatches[].dossier] | sort')\" = '$UNMAPPABLE' ]"
check "broken changes: none of them reached the portal" sh -c "
	for m in \$(echo '$UNMAPPABLE' | jq -r '.[]'); do
		curl -sf \"$SIM_URL/_sim/portal/dossier?mahoso=\$m\" | jq -e '.header == null and .progress == []' >/dev/null || exit 1
	done"
check "oversize: delivered truncated (TrichYeuHoSo 2000, ChuHoSo 500, NoiDungXuLy 2000)" \
	sim_json "/_sim/portal/dossier?mahoso=$MOVER" '(.header.TrichYeuHoSo | length) == 2000 and
		(.header.ChuHoSo | length) == 500 and (.progress | length) == 1 and
		(.progress[0].NoiDungXuLy | length) == 2000'
check "oversize: recorded as dossier.truncated" sh -c "
	$BIN/lienthongctl --socket $T/ctl.sock --json mismatches --kind dossier.truncated --dossier $MOVER |
	jq -e '(.mismatches | length) == 1' >/dev/null"
# A change whose hoSo is null names no dossier: no dead letter can hold it,
# so it is a dossier.malformed mismatch keyed by its seq, and the feed goes on.
feed_op '{"op":"malformed","count":2,"kind":"nohoso"}' >"$T/mal3"
NH1=$(jq -r '.seqs[0] // 0' "$T/mal3")
NH2=$(jq -r '.seqs[1] // 0' "$T/mal3")
feed_op '{"op":"generate","count":20}' >/dev/null
feed_all || fail "reading the feed"
NHM=$(jqv "$T/feed" "[.[] | select(.seq == $NH1 or .seq == $NH2) | .maHoSo]")
SKIP=$(echo "$SKIP" | jq -c ". + $NHM")
UNMAPPABLE=$(echo "$UNMAPPABLE" | jq -c ". + $NHM | sort") # nothing of them on the portal
check "no hoSo: the rest flows" settle 30
check "no hoSo: exactly once" exact
check "no hoSo: dossier.malformed for each, keyed by its seq" json_is \
	"mismatches --kind dossier.malformed" "[.mismatches[].key] | sort == [\"seq $NH1\", \"seq $NH2\"]"
check "no hoSo: no dead letter for them" flow_is ".queue.dead_letters == 4"
echo "# $(elapsed) s: broken changes checked"

# ---- 6. a refusal for good in a 200 answer -------------------------------------------------------
# With progress-raw, an oversize NoiDungXuLy goes out as it is; the portal
# refuses the whole batch naming the dossier: only that row is dead.
cp "$T/raw.conf" "$T/d.conf"
check "reload with progress_mapping = progress-raw" ctl reload
RB0=$(pstat .refused_batches)
sim_faults '{"path":"/integration","down":true}'
feed_op '{"op":"generate","count":40}' >/dev/null
feed_op '{"op":"malformed","count":1,"kind":"oversize"}' >"$T/mal2"
MBAD_SEQ=$(jq -r '.seqs[0] // 0' "$T/mal2")
check "the new pass reads them while the portal is away" wait_until 20 flow_is ".pass.cursor == \"$MBAD_SEQ\""
sim_faults '{"path":"/integration","reset":true}'
feed_all || fail "reading the feed"
MBAD=$(jqv "$T/feed" ".[] | select(.seq == $MBAD_SEQ) | .maHoSo")
SKIP=$(echo "$SKIP" | jq -c ". + [\"$MBAD\"]")
check "refusal: the other changes arrive" settle 30
check "refusal: exactly once" exact
check "refusal: the portal refused a batch in a 200 answer" portal ".refused_batches > $RB0"
check "refusal: the row is a dead letter (5 in all), the pass counts it" \
	wait_until 5 flow_is '.queue.dead_letters == 5 and .pass.dead >= 1'
check "refusal: dossier.rejected names $MBAD" sh -c "
	$BIN/lienthongctl --socket $T/ctl.sock --json mismatches --kind dossier.rejected |
	jq -e '[.mismatches[].dossier] == [\"$MBAD\"]' >/dev/null"
check "refusal: its header went (truncated), its row did not" \
	sim_json "/_sim/portal/dossier?mahoso=$MBAD" '.header != null and .progress == []'
cp "$T/base.conf" "$T/d.conf"
check "reload back to the shipped mapping" ctl reload
echo "# $(elapsed) s: refusal checked"

# ---- 7. reload in the middle of a run ----------------------------------------------------------
R0=$(ctl_json status | jq -r '.reloads.ok')
feed_op '{"op":"rate","per_s":500}' >/dev/null
sleep 0.7
cp "$T/tuned.conf" "$T/d.conf"
ctl reload >/dev/null
sleep 0.5
cp "$T/base.conf" "$T/d.conf"
ctl reload >/dev/null
sleep 0.5
ctl reload >/dev/null
sleep 0.3
feed_op '{"op":"rate","per_s":0}' >/dev/null
check "three reloads while the feed grows: all taken" status_is ".reloads.ok == $R0 + 3"
check "reload mid-run: every change arrives" settle 40
check "reload mid-run: nothing lost, nothing twice" exact
echo "# $(elapsed) s: reloads checked"

# ---- 8. deadlines again: finished dossiers lose their overdue flag ----------------------------------
OVER1=$(overdue_expected | jq -c .)
FIN=$(jq -c -n --argjson a "$OVER0" --argjson b "$OVER1" '$a - $b')
check "some dossiers flagged overdue at first have finished since ($(echo "$FIN" | jq length))" \
	sh -c "[ $(echo "$FIN" | jq length) -ge 1 ]"
check "dossier.overdue: the finished ones cleared, the open ones past due flagged" \
	wait_until 5 over_is "$OVER1"
check "dossier.overdue: the cleared flags are resolved, not deleted" sh -c "
	$BIN/lienthongctl --socket $T/ctl.sock --json mismatches --kind dossier.overdue --state resolved --limit 100000 |
	jq -e --argjson fin '$FIN' '([.mismatches[].dossier] | sort) as \$r | (\$fin - \$r) == []' >/dev/null"
LATE1=$(late_expected | jq -c .)
check "dossier.late: every dossier finished after its due date ($(echo "$LATE1" | jq length))" \
	wait_until 5 late_is "$LATE1"

# ---- 9. a late finish stored shortly before a pass ends ----------------------------------------------
# deadline_interval 1h: the new pass sweeps at its start, then not for an
# hour. Changes that finish dossiers late are stored, then a reload ends
# the pass (as pass_length, a stop or a crash would) before its next sweep.
# The next pass sweeps every second: those dossiers must still be recorded
# dossier.late.
sed 's/^deadline_interval = 1s$/deadline_interval = 1h/' "$T/base.conf" >"$T/slow.conf"
cp "$T/slow.conf" "$T/d.conf"
check "reload with deadline_interval = 1h" ctl reload
check "the new pass runs" wait_until 20 flow_is '.pass.caught_up == true'
G=$(feed_op '{"op":"generate","count":400}')
GF=$(echo "$G" | jq -r '.first_seq // 0')
GL=$(echo "$G" | jq -r '.last_seq // 0')
check "the pass stores 400 new changes" wait_until 20 flow_is ".pass.cursor == \"$GL\""
cp "$T/base.conf" "$T/d.conf"
check "reload back to deadline_interval = 1s (the pass ends)" ctl reload
check "... and every change arrives" settle 30
LNEW=$(jqv "$T/feed" "group_by(.maHoSo) | map(. as \$d |
	[\$d[] | select((.trangThai | code) == 9 or (.trangThai | code) == 10)][0] as \$f |
	select(\$f != null and \$f.seq >= $GF and \$f.seq <= $GL and \$d[-1].hoSo.ngayHenTra != null and
		(\$f.thoiDiem | .[0:19]) > (\$d[-1].hoSo.ngayHenTra | .[0:19])) | \$d[0].maHoSo) | sort" | jq -c .)
check "some of the 400 changes finish dossiers late ($LNEW)" sh -c "[ $(echo "$LNEW" | jq length) -ge 1 ]"
LATE2=$(late_expected | jq -c .)
sleep 2.5
check "dossier.late still records the dossiers finished late just before the pass ended" \
	late_is "$LATE2"

# ---- 10. the end: everything, once, in order -----------------------------------------------------
settle 30 || fail "final settle"
check "in the end: every mappable change on the portal exactly once ($EXP rows)" exact
check "in the end: nothing pending or sending" flow_is '.queue.rows_pending == 0 and .queue.rows_sending == 0'
check "in the end: no row counted as sent without seeing it on the portal (no dossier.unverified)" sh -c "
	[ \"\$($BIN/lienthongctl --socket $T/ctl.sock --json mismatches --kind dossier.unverified |
		jq -r '.mismatches | length')\" = 0 ]"
# shellcheck disable=SC2046 # one word per dossier
check "in the end: per dossier rows in feed order, header at the latest status (sample)" \
	order_ok "$MPRE" "$MC" $(sample 12)
check "in the end: for every dossier, rows in feed order and the last header at the latest status" \
	order_all
daemon_stop
check "the daemon stops cleanly" test "$D_RC" -eq 0
echo "# $(elapsed) s in all"
finish
