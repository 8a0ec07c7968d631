#!/bin/sh
# Crash test of the dossier flow (notes/dossier-spec.md §5, §6): lienthongd
# is killed with SIGKILL at random points while it pushes a large feed
# (3000 dossiers and more changes between rounds) to the simulated portal,
# and restarted on the same store each time:
#
#   - a kill while it starts, then 5 rounds killed a random 0.05-1.5 s
#     into pushing (CRASH_SEED to replay);
#   - a round killed while progress requests are on the wire and the portal
#     has applied them but not yet answered (rows left 'sending': in doubt
#     after the restart, found by TraCuuHoSo, not sent again);
#   - a round killed while the portal holds requests it never applies
#     (a hang: in doubt, absent, sent again);
#   - a SIGTERM in the middle of a push (a clean stop, exit 0);
#   - a full store ([store] max_size lowered by reload in the middle of a
#     push): changes are no longer taken, nothing accepted is lost or sent
#     twice, and the flow resumes once max_size is raised by reload;
#   - a last kill during the catch-up.
#
# In the end every change of the feed is on the portal exactly once
# (progress_rows == changes, duplicates 0), each dossier's rows in feed
# order with its latest status, the outbox is empty (depth 0, rows_sending
# 0), and the deadlines survived the crashes (dossier.overdue,
# dossier.late).
#
# Usage: BUILD=build sh tests/system/test_dossier_crash.sh   (needs curl, jq, sqlite3)
. "$(dirname "$0")/lib.sh"

no_proxy=127.0.0.1,localhost
NO_PROXY=$no_proxy
export no_proxy NO_PROXY

NOW=2025-11-20T10:00:00+07:00
T0=$(date +%s)
elapsed() { echo $(($(date +%s) - T0)); }
SEED=${CRASH_SEED:-$((($$ + $(date +%s)) % 100000))}
echo "# CRASH_SEED=$SEED"

feed_op() { curl -sf -X POST -d "$1" "$SIM_URL/_sim/feed"; }
pstat() { curl -sf "$SIM_URL/_sim/portal/stats" | jq -r "$1"; }
portal() { sim_json /_sim/portal/stats "$1"; }
changes() { curl -sf "$SIM_URL/_sim/feed" | jq -r '.changes // 0'; }
# The national status of a provincial one; a feed change as a portal row key.
JQDEFS='def code: {"MOI_DANG_KY":1,"DA_TIEP_NHAN":2,"TU_CHOI_TIEP_NHAN":3,"DANG_XU_LY":4,
	"YEU_CAU_BO_SUNG":5,"NGHIA_VU_TAI_CHINH":6,"CONG_DAN_RUT":7,"DUNG_XU_LY":8,
	"DA_XU_LY_XONG":9,"DA_TRA_KET_QUA":10}[.];
def ymd: .[0:4] + .[5:7] + .[8:10] + .[11:13] + .[14:16] + .[17:19];
def rowkey: [(.buocXuLy.thoiDiem // "" | ymd), (.trangThai | code | tostring)];'
# feed_all: every change of the feed into $T/feed (what the checks use of
# it), one a line, in seq order.
feed_all() {
	rm -f "$T/feed"
	feed_fetch "$T/feed" '{seq, maHoSo, thoiDiem, trangThai,
		buocXuLy: {thoiDiem: .buocXuLy.thoiDiem}, hoSo: {ngayHenTra: .hoSo.ngayHenTra}}'
}
feed_dossiers() { jq -r .maHoSo "$T/feed" | sort -u | wc -l; }
# order_all: for every dossier, the rows the portal received (in arrival
# order, /_sim/stats records of CapNhatTienDoHoSoMC; an item received again
# counts where it was last received) are its feed changes in feed order, and
# the last header received (DongBoHoSoMC) carries the status of its last
# change. Prints the dossiers that differ.
order_all() {
	curl -sf "$SIM_URL/_sim/stats?service=CapNhatTienDoHoSoMC" >"$T/recv_p" || return 1
	curl -sf "$SIM_URL/_sim/stats?service=DongBoHoSoMC" >"$T/recv_h" || return 1
	jq -e '.received_dropped == 0' "$T/recv_p" "$T/recv_h" >/dev/null || { echo "records dropped"; return 1; }
	jq -e -n --slurpfile f "$T/feed" --slurpfile p "$T/recv_p" --slurpfile h "$T/recv_h" "$JQDEFS
	def last_seen(k): to_entries | group_by(.value | k) | map(max_by(.key)) | sort_by(.key) | map(.value);
	(\$f | group_by(.maHoSo) | map({key: .[0].maHoSo, value: {rows: map(rowkey),
		last: (.[-1].trangThai | code | tostring)}}) | from_entries) as \$want |
	(\$p[0].received | last_seen([.MaHoSo, .ThoiDiemXuLy, (.TrangThai | tostring)]) |
		group_by(.MaHoSo) | map({key: .[0].MaHoSo, value: map([.ThoiDiemXuLy, (.TrangThai | tostring)])}) |
		from_entries) as \$rows |
	(\$h[0].received | last_seen(.MaHoSo) | map({key: .MaHoSo, value: (.TrangThaiHoSo | tostring)}) |
		from_entries) as \$hdr |
	[\$want | to_entries[] | select(\$rows[.key] != .value.rows or \$hdr[.key] != .value.last) | .key] as \$bad |
	if \$bad == [] then true else (\$bad[0:10] | join(\" \") | \"differ: \" + . | stderr | false) end" \
		>/dev/null
}
flow_is() { status_is "[.flows[] | select(.name == \"dossier\")][0].detail | $1"; }
# mm KIND: the open mismatches of KIND as a sorted JSON array of their dossiers.
mm() { ctl_json mismatches --kind "$1" --limit 100000 --state open | jq -c '[.mismatches[].dossier] | sort'; }
# same_json GOT WANT: two sorted JSON arrays are equal; else prints the difference.
same_json() {
	[ -n "$1" ] && [ "$1" = "$2" ] && return 0
	jq -c -n --argjson g "${1:-null}" --argjson w "$2" \
		'{missing: ($w - ($g // [])), unexpected: (($g // []) - $w), got: ($g | length), expected: ($w | length)}'
	return 1
}
# ms_of N: a random 50..1500 for round N.
ms_of() { awk -v s="$SEED" -v n="$1" 'BEGIN { srand(s * 100 + n); print int(50 + rand() * 1450) }'; }
secs() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }
# start CONF: the daemon answers on its control socket (which a killed
# daemon left behind: the new one must replace it).
start() {
	"$BIN/lienthongd" --config "$1" >>"$T/daemon.log" 2>&1 &
	D_PID=$!
	wait_until 15 ctl status
}
crash() {
	kill -KILL "$D_PID"
	wait "$D_PID" 2>/dev/null
	D_PID=""
}
# sending_rows: rows the store holds as 'sending' (the daemon is down).
sending_rows() {
	sqlite3 -readonly "$T/state/lienthong.db" "SELECT count(*) FROM progress WHERE state = 'sending'" 2>/dev/null
}
delivered() {
	portal ".progress_rows >= $1" &&
		flow_is '.pass.caught_up == true and .pass.in_flight == 0 and .pass.in_doubt == 0 and
			.queue.depth == 0 and .queue.rows_pending == 0 and .queue.rows_sending == 0'
}

[ -x "$BIN/lienthong-sim" ] || { fail "$BIN/lienthong-sim not built"; finish; exit 1; }
sim_start --dossiers 3000 --dossier-now "$NOW" || { fail "simulator did not start"; finish; exit 1; }

write_base_conf "$T/d.conf"
sed -i "s|^path = $T/state/lienthong.db|path = $T/state/lienthong.db\nretry_interval = 1s|" "$T/d.conf"
dossier_conf "$T/d.conf" "retry_max = 1s
deadline_interval = 1s" "timeout = 10s
breaker_open = 1s"
sed "s|^retry_interval = 1s|retry_interval = 1s\nmax_size = 4k|" "$T/d.conf" >"$T/full.conf"
cp "$T/d.conf" "$T/normal.conf"
check "the full-store configuration sets max_size" grep -q '^max_size = 4k' "$T/full.conf"

N0=$(changes)
check "a large feed: $N0 changes" test "$N0" -gt 5000

# ---- random kills -----------------------------------------------------------------------------
# Killed while it starts (before the control socket is up, maybe in the
# middle of opening the store).
"$BIN/lienthongd" --config "$T/d.conf" >>"$T/daemon.log" 2>&1 &
D_PID=$!
sleep 0.05
crash
# Then 5 rounds killed a random 0.05-1.5 s after the portal began to get
# rows from this run. (lib.sh's helpers use $i: the round is $round.)
pushing() { portal ".progress_rows > $P"; }
for round in 1 2 3 4 5; do
	ms=$(ms_of "$round")
	feed_op '{"op":"generate","count":500}' >/dev/null
	P=$(pstat .progress_rows)
	start "$T/d.conf" || { fail "round $round: the daemon did not start"; break; }
	wait_until 20 pushing || echo "# round $round: no row pushed in 20 s"
	sleep "$(secs "$ms")"
	if kill -0 "$D_PID" 2>/dev/null; then
		crash
		pass "round $round: killed $(secs "$ms") s into the push; the portal had $(pstat .progress_rows) rows of $(changes)"
	else
		fail "round $round: the daemon died by itself before the kill"
		wait "$D_PID" 2>/dev/null
		D_PID=""
	fi
done
check "no duplicate after the random kills" portal '.duplicates == 0'
echo "# $(elapsed) s: random kills done"

# ---- a clean stop in the middle of a push ---------------------------------------------------------
feed_op '{"op":"generate","count":500}' >/dev/null
P=$(pstat .progress_rows)
start "$T/d.conf" || fail "stop round: the daemon did not start"
wait_until 20 pushing || echo "# stop round: no row pushed in 20 s"
sleep 0.3
daemon_stop
check "SIGTERM in the middle of a push: exits 0 ($D_RC) within 15 s (${D_MS} ms)" \
	sh -c "[ $D_RC -eq 0 ] && [ $D_MS -lt 15000 ]"
check "no duplicate after the clean stop" portal '.duplicates == 0'
echo "# $(elapsed) s: clean stop done"

# ---- killed with rows on the wire, applied by the portal ----------------------------------------
# The portal applies the rows and holds its answer 5 s (the connector waits
# up to its timeout, 10 s); the daemon is killed while it waits: the rows
# stay 'sending' in the store.
start "$T/d.conf" || fail "applied round: the daemon did not start"
RC0=$(curl -sf "$SIM_URL/_sim/stats?service=CapNhatTienDoHoSoMC" | jq -r '.received_count // 0')
applied() { sim_is ".received_count > $RC0" "?service=CapNhatTienDoHoSoMC"; }
sim_faults '{"service":"CapNhatTienDoHoSoMC","latency_ms":5000}'
feed_op '{"op":"generate","count":300}' >/dev/null
check "applied round: rows go out, the portal applies them and holds its answer" \
	wait_until 20 applied
sleep 0.3
crash
sim_faults '{"service":"CapNhatTienDoHoSoMC","reset":true}'
S1=$(sending_rows)
check "applied round: the store holds rows 'sending' after the kill (${S1:-?})" test "${S1:-0}" -gt 0
F0=$(grep -Ec 'dossier [^ ]+: [1-9][0-9]* rows? in doubt found on the portal' "$T/daemon.log")
D0=$(grep -c 'with progress rows in doubt after a stop' "$T/daemon.log")
doubt_more() { [ "$(grep -c 'with progress rows in doubt after a stop' "$T/daemon.log")" -gt "$D0" ]; }
start "$T/d.conf" || fail "applied round: the daemon did not restart"
check "applied round: after the restart the rows are in doubt" wait_until 10 doubt_more
found_more() {
	[ "$(grep -Ec 'dossier [^ ]+: [1-9][0-9]* rows? in doubt found on the portal' "$T/daemon.log")" -gt "$F0" ]
}
check "applied round: looked up, found on the portal (not sent again)" wait_until 15 found_more
check "applied round: no duplicate" portal '.duplicates == 0'
check "applied round: every row in doubt is settled" \
	wait_until 60 flow_is '.pass.in_doubt == 0 and .queue.rows_sending == 0'
crash

# ---- killed with rows on the wire, never applied (hang) ----------------------------------------
start "$T/d.conf" || fail "hang round: the daemon did not start"
HG0=$(sim_stat .faults.hang)
hung() { sim_is ".faults.hang > $HG0"; }
sim_faults '{"service":"CapNhatTienDoHoSoMC","hang_rate":1,"hang_ms":5000}'
feed_op '{"op":"generate","count":300}' >/dev/null
check "hang round: rows go out and hang" wait_until 20 hung
sleep 0.3
crash
sim_faults '{"service":"CapNhatTienDoHoSoMC","reset":true}'
S2=$(sending_rows)
check "hang round: the store holds rows 'sending' after the kill (${S2:-?})" test "${S2:-0}" -gt 0
A0=$(grep -Ec 'in doubt found on the portal, [1-9][0-9]* to send again' "$T/daemon.log")
start "$T/d.conf" || fail "hang round: the daemon did not restart"
again_more() {
	[ "$(grep -Ec 'in doubt found on the portal, [1-9][0-9]* to send again' "$T/daemon.log")" -gt "$A0" ]
}
check "hang round: looked up, absent, sent again" wait_until 15 again_more
check "hang round: no duplicate" portal '.duplicates == 0'
echo "# $(elapsed) s: rounds with rows on the wire done"

# ---- a full store ---------------------------------------------------------------------------------
# While the daemon pushes a backlog, its store is capped below its size by
# reload: what needs a new page can no longer be recorded (changes,
# acknowledgements, events). Rows already marked 'sending' may be on the
# portal without their acknowledgement on record: after the cap is raised
# by reload they are in doubt, looked up, not sent twice; the changes not
# taken are read again.
N1=$(changes)
check "the daemon catches up before the store fills" wait_until 60 delivered "$N1"
# Big enough that the reload lands in the middle of it: the daemon takes in
# ~9,000 changes a second and pushes ~5,000.
feed_op '{"op":"generate","count":10000}' >/dev/null
P=$(pstat .progress_rows)
check "full store: the daemon pushes the new backlog" wait_until 20 pushing
cp "$T/full.conf" "$T/d.conf"
check "reload with max_size = 4k in the middle of the push" ctl reload
check "full store: status says so" wait_until 20 status_is '.store.health == "full"'
check "full store: the log says max_size is reached" grep -q 'max_size' "$T/daemon.log"
check "full store: the daemon keeps running and answering" ctl status
# Rows already stored may still go out while marking them 'sending' fits in
# the pages the store has; new changes cannot be stored, so cannot go out.
sleep 2.5
P1=$(pstat .progress_rows)
check "full store: no duplicate while full" portal '.duplicates == 0'
check "full store: the backlog was cut short ($P1 of $(changes) rows out)" sh -c "[ $P1 -lt $(changes) ]"
check "full store: still full" status_is '.store.health == "full"'
cp "$T/normal.conf" "$T/d.conf"
check "reload without max_size" ctl reload
check "full store: the store recovers" wait_until 20 status_is '.store.health == "ok"'
N2=$(changes)
check "full store: the flow resumes, every change arrives" wait_until 60 delivered "$N2"
check "full store: no duplicate" portal '.duplicates == 0'
echo "# $(elapsed) s: full store done"

# ---- a last kill during the catch-up, then the end --------------------------------------------------
feed_op '{"op":"generate","count":500}' >/dev/null
sleep "$(secs "$(ms_of 9)")"
crash
start "$T/d.conf" || fail "the daemon did not restart for the end"
N=$(changes)
check "in the end every change reaches the portal ($N)" wait_until 60 delivered "$N"
echo "# $(elapsed) s: caught up after the last kill"
check "in the end: exactly once (progress_rows == changes, duplicates 0)" \
	portal ".progress_rows == $N and .duplicates == 0"
feed_all || fail "reading the feed"
check "in the end: one portal dossier per feed dossier, each created once" \
	portal ".dossiers == $(feed_dossiers) and .creates == .dossiers"
check "in the end: for every dossier, rows in feed order and the last header at the latest status" \
	order_all
echo "# $(elapsed) s: order checked"
# Deadlines survive the crashes: the open dossiers past due are flagged, the
# dossiers finished after their due date recorded late.
OVER=$(jq -c -s "$JQDEFS group_by(.maHoSo) | map(last) | map(select(((.trangThai | code) as \$c |
	[3, 7, 9, 10] | index([\$c]) | not) and .hoSo.ngayHenTra != null) | .maHoSo) | sort" "$T/feed")
LATE=$(jq -c -s "$JQDEFS group_by(.maHoSo) | map(. as \$d |
	[\$d[] | select((.trangThai | code) == 9 or (.trangThai | code) == 10)][0] as \$f |
	select(\$f != null and \$d[-1].hoSo.ngayHenTra != null and
		(\$f.thoiDiem | .[0:19]) > (\$d[-1].hoSo.ngayHenTra | .[0:19])) | \$d[0].maHoSo) | sort" "$T/feed")
over_is() { same_json "$(mm dossier.overdue)" "$OVER"; }
late_is() { same_json "$(mm dossier.late)" "$LATE"; }
sleep 1.5
check "in the end: dossier.overdue flags exactly the open dossiers past due ($(echo "$OVER" | jq length))" \
	wait_until 5 over_is
check "in the end: dossier.late records every dossier finished after its due date ($(echo "$LATE" | jq length))" \
	late_is
check "in the end: the outbox is empty (depth 0, rows_sending 0)" \
	flow_is '.queue.depth == 0 and .queue.rows_sending == 0 and .queue.rows_pending == 0'
check "in the end: nothing dead" flow_is '.queue.dead_letters == 0'
daemon_stop
check "the daemon stops cleanly" test "$D_RC" -eq 0
echo "# $(elapsed) s in all"
finish
