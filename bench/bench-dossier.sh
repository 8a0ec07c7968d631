#!/bin/sh
# The dossier flow (issue 4) on loopback: the simulator's provincial change
# feed -> lienthongd's durable outbox (SQLite, synchronous = full: every
# group of writes is fsynced) -> the simulator's national portal. Targets:
#   dossier.changes_per_s        >= 5,000: a pre-generated feed of DOSSIERS
#                                dossiers pushed from cold, timed from the
#                                daemon's start until the portal has a
#                                progress row for every change of the feed
#   dossier.p99_latency_s        < 2 s: the feed then grows at RATE changes/s
#                                for RATE_S s; the simulator times each change
#                                from its append to the feed to the arrival of
#                                its row at the portal (/_sim/portal/latency)
#   dossier.backlog_peak_rss_mb  < 100 MB: a fresh daemon drains a backlog of
#                                BACKLOG changes; its VmHWM. BACKLOG_MODE=portal
#                                (default): the daemon takes the whole feed into
#                                its outbox while the portal answers 503, then
#                                the portal recovers (dossier.backlog_ingest_s,
#                                then dossier.backlog_drain_s from the recovery);
#                                BACKLOG_MODE=feed: the daemon was down while the
#                                feed grew, and starts with the portal up
#                                (dossier.backlog_drain_s from its start)
# and in the same run the limits, so that the ratios show:
#   dossier.limit_requests_per_s wrk sending CapNhatTienDoHoSoMC batches of 100
#                                rows to the simulator (dossier.limit_rows_per_s
#                                the same in rows)
#   dossier.fsync_per_s          4 KiB overwrites + fdatasync in the store's
#                                directory (tests/helpers/fsync_rate)
#
# Knobs (environment):
#   DOSSIERS=20000        dossiers of the feed of the throughput phase (~46,000 changes)
#   NOW=                  "now" of the simulated province (--dossier-now, e.g.
#                         2025-11-20T10:00:00+07:00) for a feed that is the same from
#                         run to run; default the hour started, so the feed's size and
#                         mix follow the weekday and the hour
#   RATE=1000 RATE_S=20   the latency phase: changes per second, seconds
#   BACKLOG=1000000       changes of the backlog phase; 0 skips it (a quick run, ~2 min).
#                         A million takes 1M / the drain rate, plus in portal mode the
#                         ingest: about 3 min at the targets, far longer below them
#   BACKLOG_MODE=portal   or feed, see above
#   TIMEOUT=600           the longest any phase may take (s); STALL=120: the longest
#                         without a new row at the portal
#   FLOW_LINES, DVCQG_LINES   extra "key = value" lines for [flow.dossier] and
#                         [connector.portal] (tests/system/lib.sh dossier_conf; it sets
#                         poll = 200ms and retry_min = 200ms)
#   BACKLOG_FLOW_LINES="retry_max = 1min"  extra flow lines of the backlog phase only.
#                         In portal mode every dossier fails again each time its
#                         back-off ends: a short retry_max makes the outage cost CPU
#                         and store writes, a long one delays the drain after the
#                         recovery (the drain figure includes that wait, and up to the
#                         breaker's 30 s before its probe)
#   PERF=1                perf record the daemon during the throughput phase (DWARF call
#                         graphs) and print the functions with the largest inclusive shares
# Comments ("# ...") tell where the time went: the CPU seconds of the daemon and
# the simulator in each phase (they share the machine's CPUs with the bench's polling).
. "$(dirname "$0")/lib.sh"
DOSSIERS=${DOSSIERS:-20000}
NOW=${NOW:-}
RATE=${RATE:-1000}
RATE_S=${RATE_S:-20}
BACKLOG=${BACKLOG:-1000000}
TIMEOUT=${TIMEOUT:-600}
STALL=${STALL:-120}
FLOW_LINES=${FLOW_LINES:-}
DVCQG_LINES=${DVCQG_LINES:-}
BACKLOG_FLOW_LINES=${BACKLOG_FLOW_LINES-retry_max = 1min}
BACKLOG_MODE=${BACKLOG_MODE:-portal}
no_proxy=127.0.0.1,localhost
NO_PROXY=$no_proxy
export no_proxy NO_PROXY

NOW_ARG=${NOW:+--dossier-now $NOW}
TICK=$(getconf CLK_TCK 2>/dev/null || echo 100)
# cpu_s PID: user + system CPU seconds of PID so far (0 when gone).
cpu_s() { awk -v t="$TICK" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_mb() { awk "/^$2:/ {printf \"%.1f\", \$2/1024}" "/proc/$1/status" 2>/dev/null; }
div() { awk -v a="$1" -v b="$2" -v f="${3:-%.0f}" 'BEGIN { if (b > 0) printf f, a / b; else print "nan" }'; }
sim_get() { curl -s "$SIM_URL$1"; }
sim_post() { curl -s -X POST -d "$2" "$SIM_URL$1"; }
feed_changes() { sim_get /_sim/feed | jq -r '.changes // 0'; }
lat_rows() { sim_get /_sim/portal/latency | jq -r '.rows // 0'; }
# queue_is EXPR: lienthongctl --json queue answers and EXPR holds.
queue_is() { json_is queue "$1"; }
note_cpu() { # WHAT SECONDS D0 S0: the CPU used by the daemon and the simulator since D0, S0
	echo "# $1: $2 s; CPU: lienthongd $(echo "$(cpu_s "$D_PID") $3" | awk '{printf "%.1f", $1 - $2}') s," \
		"lienthong-sim $(echo "$(cpu_s "$SIM_PID") $4" | awk '{printf "%.1f", $1 - $2}') s"
}

# wait_rows N LIMIT_S: polls the portal until it has received rows for N
# changes since the last latency reset. DONE_MS: when it got there (or when
# the count last grew); ROWS: the count. 1 on timeout, on STALL s without
# progress, or when the daemon is gone.
wait_rows() {
	_want=$1
	_limit=$(($(now_ms) + $2 * 1000))
	ROWS=0
	DONE_MS=$(now_ms)
	while :; do
		_r=$(lat_rows)
		_t=$(now_ms)
		case $_r in '' | *[!0-9]*) _r=0 ;; esac
		if [ "$_r" -gt "$ROWS" ]; then
			ROWS=$_r
			DONE_MS=$_t
		fi
		[ "$ROWS" -ge "$_want" ] && return 0
		[ "$_t" -ge "$_limit" ] && return 1
		[ $((_t - DONE_MS)) -ge $((STALL * 1000)) ] && return 1
		kill -0 "$D_PID" 2>/dev/null || return 1
		sleep 0.2
	done
}

# poll_until SECONDS CMD...: CMD every second until it succeeds (the queue
# command reads counters, but a backlog is no time to ask ten times a second).
poll_until() {
	_end=$(($(now_ms) + $1 * 1000))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(now_ms)" -ge "$_end" ] && return 1
		kill -0 "$D_PID" 2>/dev/null || return 1
		sleep 1
	done
}

# conf FILE [EXTRA_FLOW_LINES]: the daemon's configuration, log level notice.
conf() {
	write_base_conf "$1"
	sed -i 's/^log_level = debug/log_level = notice/' "$1"
	dossier_conf "$1" "$FLOW_LINES
${2:-}" "$DVCQG_LINES"
}
queue_summary() {
	# by_reason with the failures summed per service (the reasons carry the batch size)
	ctl_json queue 2>/dev/null | jq -c '{depth, rows_pending, rows_sending, dossiers, dead_letters,
		by_reason: ((.by_reason // {}) | to_entries | group_by(.key | sub(" \\(.*"; "")) |
			map({key: (.[0].key | sub(" \\(.*"; "")), value: (map(.value) | add)}) |
			from_entries)}' 2>/dev/null | sed 's/^/# queue: /'
}

# ---- the disk -------------------------------------------------------------------
mkdir -p "$T/state"
if [ -x "$BIN/tests/helpers/fsync_rate" ]; then
	FSYNC_RATE=$BIN/tests/helpers/fsync_rate
elif ${CC:-cc} -O2 -o "$T/fsync_rate" "$(dirname "$0")/../tests/helpers/fsync_rate.c"; then
	FSYNC_RATE=$T/fsync_rate
else
	FSYNC_RATE=""
fi
if [ -n "$FSYNC_RATE" ]; then
	figure dossier.fsync_per_s "$("$FSYNC_RATE" "$T/state" 2)" fsync/s
else
	echo "# no C compiler for tests/helpers/fsync_rate.c: no fsync figure"
fi

# ---- throughput: a pre-generated feed pushed from cold ------------------------------
# shellcheck disable=SC2086 # $NOW_ARG is empty or "--dossier-now T" on purpose
sim_start --dossiers "$DOSSIERS" --dossier-days 1 $NOW_ARG || exit 1
N=$(feed_changes)
echo "# feed: $N changes of $DOSSIERS dossiers"
sim_post /_sim/portal/latency '{"op":"reset"}' >/dev/null
conf "$T/d.conf"
S0=$(cpu_s "$SIM_PID")
T0=$(now_ms)
daemon_start "$T/d.conf" || exit 1
if [ "${PERF:-0}" = 1 ] && command -v perf >/dev/null; then
	perf record -F 199 --call-graph dwarf,16384 -o "$T/perf.data" -p "$D_PID" >/dev/null 2>&1 &
	PERF_PID=$!
fi
if wait_rows "$N" "$TIMEOUT"; then
	:
else
	echo "# throughput: only $ROWS of $N changes reached the portal"
fi
secs=$(div $((DONE_MS - T0)) 1000 %.2f)
figure dossier.changes_per_s "$(div "$ROWS" "$secs")" changes/s
note_cpu "throughput phase, $ROWS changes" "$secs" 0 "$S0"
echo "# lienthongd peak RSS so far: $(rss_mb "$D_PID" VmHWM) MB"
if [ -n "${PERF_PID:-}" ]; then
	kill -INT "$PERF_PID"
	wait "$PERF_PID"
	# inclusive shares: where the daemon's time goes, callers included
	perf report -i "$T/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
		grep -E '^ +[0-9]' | head -60 | sed 's/^/# perf: /'
fi
wait_until 30 queue_is '.depth == 0 and .rows_pending == 0 and .rows_sending == 0' ||
	echo "# the outbox did not empty after the throughput phase"
queue_summary
echo "# portal: $(sim_get /_sim/portal/stats)"

# ---- latency at RATE changes/s ---------------------------------------------------------
sim_post /_sim/portal/latency '{"op":"reset"}' >/dev/null
n0=$(feed_changes)
D0=$(cpu_s "$D_PID")
S0=$(cpu_s "$SIM_PID")
T0=$(now_ms)
sim_post /_sim/feed "{\"op\":\"rate\",\"per_s\":$RATE}" >/dev/null
sleep "$RATE_S"
sim_post /_sim/feed '{"op":"rate","per_s":0}' >/dev/null
n1=$(feed_changes)
wait_rows $((n1 - n0)) 120 || echo "# latency: only $ROWS of $((n1 - n0)) changes reached the portal"
sim_get /_sim/portal/latency >"$T/lat.json"
figure dossier.p99_latency_s "$(jq -r '.p99_s // "nan"' "$T/lat.json")" s
jq -r '"# latency of \(.rows) changes (\(.unmatched) unmatched, \(.repeated) repeated): p50 \(.p50_s) s, p90 \(.p90_s) s, p99 \(.p99_s) s, max \(.max_s) s"' "$T/lat.json"
note_cpu "latency phase, $((n1 - n0)) changes at $RATE/s" "$(div $((DONE_MS - T0)) 1000 %.1f)" "$D0" "$S0"
daemon_stop
echo "# lienthongd stopped in $D_MS ms (exit $D_RC)"

# ---- the limit: CapNhatTienDoHoSoMC batches of 100 rows ------------------------------
session=$(sim_post /auth '{"username":"lienthong","password":"secret"}' | jq -r '.session // empty')
curl -s -H 'Authorization: Bearer provincial-secret-token' \
	"$SIM_URL/provincial/api/v1/ho-so/thay-doi?limit=100" >"$T/page.json"
jq -c --arg s "$session" '
	def d14: if . == null then null else .[0:19] | gsub("[-T:]"; "") end;
	def code: {"MOI_DANG_KY":1,"DA_TIEP_NHAN":2,"TU_CHOI_TIEP_NHAN":3,"DANG_XU_LY":4,
		"YEU_CAU_BO_SUNG":5,"NGHIA_VU_TAI_CHINH":6,"CONG_DAN_RUT":7,"DUNG_XU_LY":8,
		"DA_XU_LY_XONG":9,"DA_TRA_KET_QUA":10}[.];
	{session: $s, madonvi: "000.00.00.H31", service: "CapNhatTienDoHoSoMC",
	 data: [.items[] | {MaHoSo: .maHoSo, NguoiXuLy: .buocXuLy.nguoiXuLy,
		ChucDanh: .buocXuLy.chucDanh, ThoiDiemXuLy: (.buocXuLy.thoiDiem | d14),
		PhongBanXuLy: .buocXuLy.phongBan, NoiDungXuLy: .buocXuLy.noiDung,
		TrangThai: (.trangThai | code), NgayBatDau: (.buocXuLy.ngayBatDau | d14),
		NgayKetThucTheoQuyDinh: (.buocXuLy.ngayKetThucTheoQuyDinh | d14)}]}' \
	"$T/page.json" >"$T/batch.json"
ans=$(curl -s -X POST --data-binary @"$T/batch.json" "$SIM_URL/integration")
if ! printf '%s' "$ans" | jq -e '.error_code == 0 and (.result | length) == 100' >/dev/null 2>&1; then
	echo "# the limit's batch is refused: $(printf '%s' "$ans" | head -c 300)"
elif command -v wrk >/dev/null; then
	cat >"$T/batch.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$T/batch.json", "rb")
wrk.body = f:read("*a")
f:close()
LUA
	wrk -t 2 -c 8 -d 5s -s "$T/batch.lua" "$SIM_URL/integration" >"$T/wrk.out" 2>&1
	rate=$(awk '/Requests\/sec/ {printf "%.0f", $2}' "$T/wrk.out")
	figure dossier.limit_requests_per_s "${rate:-nan}" requests/s
	figure dossier.limit_rows_per_s "$((${rate:-0} * 100))" rows/s
	grep -E 'Non-2xx|Socket errors' "$T/wrk.out" | sed 's/^/# wrk: /'
	echo "# batch of 100 rows: $(wc -c <"$T/batch.json") bytes"
else
	echo "# wrk not installed: no limit figure"
fi

# ---- a backlog of BACKLOG changes ---------------------------------------------------------
if [ "$BACKLOG" -gt 0 ]; then
	kill -TERM "$SIM_PID"
	wait "$SIM_PID"
	SIM_PID=""
	# shellcheck disable=SC2086
	sim_start --dossiers 1000 --dossier-days 1 $NOW_ARG || exit 1
	have=$(feed_changes)
	if [ "$have" -lt "$BACKLOG" ]; then
		t=$(now_ms)
		sim_post /_sim/feed "{\"op\":\"generate\",\"count\":$((BACKLOG - have))}" >/dev/null
		echo "# generated $((BACKLOG - have)) changes in $(div $(($(now_ms) - t)) 1000 %.1f) s"
	fi
	NB=$(feed_changes)
	sim_get /_sim/feed | jq -c '{changes, dossiers, log_bytes}' | sed 's/^/# backlog feed: /'
	[ "$BACKLOG_MODE" = portal ] && sim_faults '{"path":"/integration","down":true}'
	sim_post /_sim/portal/latency '{"op":"reset"}' >/dev/null
	rm -rf "$T/state"
	rm -f "$T/ctl.sock"
	conf "$T/d.conf" "$BACKLOG_FLOW_LINES"
	S0=$(cpu_s "$SIM_PID")
	T0=$(now_ms)
	daemon_start "$T/d.conf" || exit 1
	D0=0
	if [ "$BACKLOG_MODE" = portal ]; then
		ingested() { queue_is ".rows_pending + .rows_sending >= $NB"; }
		poll_until "$TIMEOUT" ingested || echo "# the backlog was not all taken in after $TIMEOUT s"
		T1=$(now_ms)
		figure dossier.backlog_ingest_s "$(div $((T1 - T0)) 1000 %.1f)" s
		note_cpu "backlog ingest" "$(div $((T1 - T0)) 1000 %.1f)" 0 "$S0"
		queue_summary
		echo "# lienthongd RSS $(rss_mb "$D_PID" VmRSS) MB, peak $(rss_mb "$D_PID" VmHWM) MB;" \
			"store $(du -sm "$T/state" | cut -f1) MB"
		ctl_json status | jq -r '.flows[0].detail.pass | "# pass: \(.changes) changes read, \(.failed) failed attempts"'
		D0=$(cpu_s "$D_PID")
		S0=$(cpu_s "$SIM_PID")
		sim_faults '{"reset":true}'
		T0=$(now_ms)
	fi
	wait_rows "$NB" "$TIMEOUT" || echo "# backlog: only $ROWS of $NB changes reached the portal"
	figure dossier.backlog_drain_s "$(div $((DONE_MS - T0)) 1000 %.1f)" s
	figure dossier.backlog_peak_rss_mb "$(rss_mb "$D_PID" VmHWM)" MB
	note_cpu "backlog drain ($BACKLOG_MODE mode), $ROWS changes" "$(div $((DONE_MS - T0)) 1000 %.1f)" "$D0" "$S0"
	echo "# drain rate $(div "$ROWS" "$(div $((DONE_MS - T0)) 1000 %.3f)") changes/s;" \
		"store $(du -sm "$T/state" | cut -f1) MB"
	queue_summary
	echo "# lienthong-sim peak RSS $(rss_mb "$SIM_PID" VmHWM) MB"
	daemon_stop
fi
