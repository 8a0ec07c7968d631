#!/bin/sh
# The payment flow's reconciliation (issue 5) at a large province's daily
# volume. Targets:
#   payment.reconcile_1m_s   < 5 s: `lienthongctl report payments` of one day
#                            of BENCH_N platform transactions against as
#                            many provincial fee records and the portal's
#                            dossiers, from the daemon's store (read-only
#                            connection, matched on the worker thread, CSV
#                            and JSON reports written), timed at the client
#   payment.peak_rss_mb      < 500 MB: lienthongd's VmHWM after that report
#   payment.ctl_p99_ms       < 50 ms: `status` round trips on the control
#                            socket (a fresh connection each, one every
#                            PROBE_MS) while the report runs and for a
#                            second after its answer (payment.ctl_max_ms
#                            the slowest)
# In the same run, the same day reconciled the way an analyst would, from
# CSV files of the same data:
#   payment.pandas_s         pandas: read the CSVs, merge on MaThamChieu,
#                            compare, rank second payments, write the list
#                            of discrepancies (bench/pandas_recon.py; the
#                            interpreter's start and pandas' import not
#                            counted)
#   payment.sqlite_s         the sqlite3 CLI: .import the CSVs into a fresh
#                            database (payment.sqlite_import_s), then index
#                            and join/anti-join them into the same classes
#                            and write the list (payment.sqlite_query_s)
# and the floor under the daemon's load: payment.limit_load_sql_s, the
# loader's three reads (store_payment.c; the portal's as one join) run one
# after the other by the sqlite3 CLI over the same store, nothing else done
# with the rows (the daemon runs them on two threads). Where the report's time goes:
# payment.load_s, payment.match_s, payment.describe_s (PHASES below).
#
# The data (bench/pay_gen.c, seeded): one Asia/Ho_Chi_Minh day, 2025-06-02;
# dossiers drawn until BENCH_N transactions exist; FAULTS per 1,000 dossiers
# in each discrepancy class of payment-spec §4 (1% each by default, ~8% of
# the transactions in all) and 2 x FAULTS per 1,000 paid at the desk. The
# store holds what the flow stores (raw rows, the portal's ~1.3 KB
# headers), ~3.5 GB at a million. The daemon's classes must equal what the
# generator expects (else the bench says so and exits 1); the analysts'
# classes are compared too (a note only).
#
# Knobs (environment):
#   BENCH_N=1000000   platform transactions (e.g. 100000 for a quick check)
#   SEED=7 FAULTS=10  the generator's seed; faults per 1,000 per class
#   BENCH_DATA=       a directory to keep the generated data in and reuse
#                     (when made with the same N, SEED, FAULTS and data
#                     version of pay_gen);
#                     default: generated afresh in the temporary directory
#   FORMATS=csv,json  the formats of the timed report (",matched" lists
#                     every matched payment too)
#   ALL_FORMATS=1     also time a report in every format (csv,xlsx,html,json)
#   PHASES=1          then time the report's parts that the store's API
#                     exposes (pay_gen --phases: load, match, describe)
#   ANALYSTS=1        0: no pandas nor sqlite3 run (a quick look at the daemon)
#   PROBE_MS=10       pause between two control-socket probes
#   PYTHON=           the interpreter with pandas (default: python3, else
#                     /usr/bin/python3, whichever imports pandas)
#   PERF=1            perf record the daemon during the report (DWARF call
#                     graphs) and print the functions with the largest
#                     inclusive shares
. "$(dirname "$0")/lib.sh"
BENCH_N=${BENCH_N:-1000000}
SEED=${SEED:-7}
FAULTS=${FAULTS:-10}
BENCH_DATA=${BENCH_DATA:-}
FORMATS=${FORMATS:-csv,json}
ALL_FORMATS=${ALL_FORMATS:-1}
PHASES=${PHASES:-1}
ANALYSTS=${ANALYSTS:-1}
PROBE_MS=${PROBE_MS:-10}
PERF=${PERF:-0}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DAY=2025-06-02
PROBE_PID=""
PERF_PID=""

bench_cleanup() {
	for p in $PROBE_PID $PERF_PID; do
		kill -TERM "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	cleanup
}
trap bench_cleanup EXIT

case $BENCH_N in
1000000) SIZE=1m ;;
*000000) SIZE=$((BENCH_N / 1000000))m ;;
*000) SIZE=$((BENCH_N / 1000))k ;;
*) SIZE=$BENCH_N ;;
esac
TICK=$(getconf CLK_TCK 2>/dev/null || echo 100)
cpu_s() { awk -v t="$TICK" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_mb() { awk "/^$2:/ {printf \"%.1f\", \$2/1024}" "/proc/$1/status" 2>/dev/null; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b - a) / 1000 }'; }
val() { awk -v k="$2" '$(NF - 1) == k {print $NF}' "$1"; } # FILE KEY: "[WHO] KEY VALUE" lines
skipped() {
	figure "$1" skipped -
	echo "bench-payment: $1 skipped: $2" >&2
}

# ---- the programs ---------------------------------------------------------------
# Built here with the flags and libraries of the Makefile's unit tests (the
# generator links the daemon's archive, to write the store through its API).
PKGS="libcurl jansson libxml-2.0 openssl libsystemd zlib sqlite3 inih libutf8proc"
SAN_FLAGS=""
[ "${SAN:-}" = 1 ] && SAN_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all"
CFLAGS_B="-D_GNU_SOURCE -Idaemon -Iconnectors -std=c11 -Wall -Wextra -Werror -Wshadow
	-Wstrict-prototypes -Wmissing-prototypes -O2 -g $SAN_FLAGS"
mkdir -p "$BIN/bench"
# stale BINARY SOURCE...: BINARY is missing or older than a SOURCE
stale() {
	[ -x "$1" ] || return 0
	_b=$1
	shift
	[ -n "$(find "$@" -newer "$_b")" ]
}
if stale "$BIN/bench/pay_gen" "$ROOT/bench/pay_gen.c" "$BIN/liblienthong.a"; then
	# shellcheck disable=SC2046,SC2086 # word splitting of the flags on purpose
	(cd "$ROOT" && ${CC:-cc} $CFLAGS_B $(pkg-config --cflags $PKGS) -rdynamic \
		-o "$BIN/bench/pay_gen" bench/pay_gen.c -Wl,--whole-archive "$BIN/liblienthong.a" \
		-Wl,--no-whole-archive $(pkg-config --libs $PKGS) -ldl -lm -lpthread) ||
		{ echo "# cannot build bench/pay_gen.c"; exit 1; }
fi
if stale "$BIN/bench/ctl_probe" "$ROOT/bench/ctl_probe.c"; then
	# shellcheck disable=SC2086
	(cd "$ROOT" && ${CC:-cc} $CFLAGS_B -o "$BIN/bench/ctl_probe" bench/ctl_probe.c) ||
		{ echo "# cannot build bench/ctl_probe.c"; exit 1; }
fi

# ---- the data ------------------------------------------------------------------------
DATA=${BENCH_DATA:-$T/data}
STAMP="n=$BENCH_N seed=$SEED faults=$FAULTS data=$("$BIN/bench/pay_gen" --data-version)"
if [ -f "$DATA/stamp" ] && [ "$(cat "$DATA/stamp")" = "$STAMP" ] && [ -s "$DATA/gen.out" ]; then
	echo "# reusing the data of $DATA (BENCH_DATA), generated in $(val "$DATA/gen.out" ingest_s) s"
	REUSED=1
else
	rm -rf "$DATA/state" "$DATA"/*.csv "$DATA/stamp" "$DATA/gen.out"
	mkdir -p "$DATA/state"
	"$BIN/bench/pay_gen" --store "$DATA/state/lienthong.db" --csv "$DATA" --n "$BENCH_N" \
		--seed "$SEED" --faults "$FAULTS" >"$DATA/gen.out" || { echo "# pay_gen failed"; exit 1; }
	printf '%s\n' "$STAMP" >"$DATA/stamp"
	REUSED=0
fi
STORE=$DATA/state/lienthong.db
G=$DATA/gen.out
figure payment.transactions "$(val "$G" transactions)" transactions
figure payment.fee_records "$(val "$G" fee_records)" records
figure payment.portal_entries "$(val "$G" portal)" dossiers
[ "$REUSED" = 0 ] && figure payment.ingest_s "$(val "$G" ingest_s)" s
echo "# ingest: pay_gen through the store's API, groups of 5,000 writes," \
	"synchronous = normal; store $(du -sm "$DATA/state" | cut -f1) MB," \
	"CSV files $(cat "$DATA"/*.csv | wc -c | awk '{printf "%.0f", $1 / 1048576}') MB"
EXP_MISMATCHES=$(awk '$1 == "expected" && $2 != "matched" {n += $3} END {print n + 0}' "$G")

# ---- the floor: the loader's reads alone ----------------------------------------------
if command -v sqlite3 >/dev/null; then
	t0=$(now_ms)
	sqlite3 -readonly "$STORE" >"$T/floor.out" 2>&1 <<SQL
SELECT count(ref), count(nullif(txid, '')), count(mahoso), sum(amount), sum(state), sum(at_ms),
	sum(verified) FROM pay_tx WHERE day BETWEEN 20250602 AND 20250602;
SELECT count(nullif(ref, '')), count(mahoso), sum(amount), count(state), count(method),
	sum(at_ms) FROM fee_records WHERE day BETWEEN 20250602 AND 20250602;
SELECT count(p.mahoso), sum(p.paid_online), sum(p.fee_lines) FROM pay_tx AS t
	CROSS JOIN portal_fees AS p ON p.mahoso = t.mahoso WHERE t.day BETWEEN 20250602 AND 20250602
	AND t.state = 1 AND t.verified = 1;
SQL
	figure payment.limit_load_sql_s "$(secs "$t0" "$(now_ms)")" s
	sed 's/^/# loader reads (sqlite3 CLI): /' "$T/floor.out"
else
	skipped payment.limit_load_sql_s "no sqlite3 CLI"
fi

# ---- the daemon --------------------------------------------------------------------------
secret_file paygov.token paygov-secret-token >/dev/null
secret_file paygov.key paygov-partner-key >/dev/null
secret_file province.token provincial-secret-token >/dev/null
write_base_conf "$T/d.conf"
# the report fetches nothing: the connectors point at a closed loopback port
sed -i -e 's/^log_level = debug/log_level = info/' -e "s|^path = $T/state/lienthong.db|path = $STORE|" \
	"$T/d.conf"
cat >>"$T/d.conf" <<CONF

[connector.paygov]
type = paygov
url = http://127.0.0.1:9/paygov
token = $T/paygov.token
partner = HUNGYEN
key = $T/paygov.key

[connector.province]
type = provincial
url = http://127.0.0.1:9/provincial
token = $T/province.token

[flow.payment]
platform = paygov
fees = province
reports_dir = $T/reports
CONF
t0=$(now_ms)
daemon_start "$T/d.conf" || exit 1
echo "# lienthongd ready in $(secs "$t0" "$(now_ms)") s on the store; RSS $(rss_mb "$D_PID" VmRSS) MB"
"$BIN/bench/ctl_probe" "$T/ctl.sock" "$PROBE_MS" 2 >"$T/probe0.out"
figure payment.ctl_idle_p99_ms "$(val "$T/probe0.out" p99_ms)" ms

# report FORMATS TAG: one on-demand report, timed, with the control socket
# probed meanwhile (and for a second after). Sets MS (wall), and leaves
# $T/report-TAG.json, $T/probe-TAG.out.
report() {
	"$BIN/bench/ctl_probe" "$T/ctl.sock" "$PROBE_MS" 600 >"$T/probe-$2.out" &
	PROBE_PID=$!
	if [ "$PERF" = 1 ] && [ "$2" = main ] && command -v perf >/dev/null; then
		perf record -F 199 --call-graph dwarf,16384 -o "$T/perf.data" -p "$D_PID" \
			>/dev/null 2>&1 &
		PERF_PID=$!
		sleep 0.5
	fi
	_c0=$(cpu_s "$D_PID")
	_t0=$(now_ms)
	ctl_json --timeout 600 report payments --from "$DAY" --to "$DAY" --formats "$1" \
		>"$T/report-$2.json" 2>"$T/report-$2.err"
	_rc=$?
	MS=$(($(now_ms) - _t0))
	# the loop still has the report's end to do after the answer (it frees
	# the result there): probe on for a second
	sleep 1
	_c1=$(cpu_s "$D_PID")
	kill -TERM "$PROBE_PID"
	wait "$PROBE_PID"
	PROBE_PID=""
	if [ -n "$PERF_PID" ]; then
		kill -INT "$PERF_PID"
		wait "$PERF_PID"
		PERF_PID=""
	fi
	echo "# report $1: exit $_rc in $(secs 0 "$MS") s (lienthongd CPU" \
		"$(echo "$_c1 $_c0" | awk '{printf "%.1f", $1 - $2}') s); the daemon's own time" \
		"$(jq -r '.seconds // .result.seconds // "?"' "$T/report-$2.json" 2>/dev/null) s;" \
		"probes: $(tr '\n' ' ' <"$T/probe-$2.out" | sed 's/probe //g')"
	[ "$_rc" = 0 ] || sed 's/^/# report: /' "$T/report-$2.err" "$T/report-$2.json" | head -5
	return "$_rc"
}

RSS0=$(rss_mb "$D_PID" VmRSS)
BAD=0
if report "$FORMATS" main; then
	figure "payment.reconcile_${SIZE}_s" "$(secs 0 "$MS")" s
else
	figure "payment.reconcile_${SIZE}_s" nan s
	BAD=1
fi
figure payment.peak_rss_mb "$(rss_mb "$D_PID" VmHWM)" MB
echo "# lienthongd RSS before the report $RSS0 MB, after $(rss_mb "$D_PID" VmRSS) MB"
figure payment.ctl_p99_ms "$(val "$T/probe-main.out" p99_ms)" ms
figure payment.ctl_max_ms "$(val "$T/probe-main.out" max_ms)" ms
[ "$(val "$T/probe-main.out" errors)" = 0 ] ||
	echo "# $(val "$T/probe-main.out" errors) control probes failed during the report"

# what the daemon found against what the generator made
R=$T/report-main.json
jq -r '(.summary // .result.summary // {}) | to_entries[] | "\(.key) \(.value.count)"' "$R" \
	2>/dev/null >"$T/daemon.classes"
figure payment.mismatches "$(awk '$1 != "matched" {n += $2} END {print n + 0}' "$T/daemon.classes")" items
# compare FILE WHO: the classes in FILE ("CLASS COUNT" lines) against the generator's
compare() {
	_d=$(awk 'NR == FNR { if ($1 == "expected") want[$2] = $3; next }
		{ got[$1] = $2 }
		END { for (c in want) if (got[c] + 0 != want[c] + 0)
			printf "%s %s (expected %s) ", c, got[c] + 0, want[c] }' "$G" "$1")
	if [ -z "$_d" ]; then
		echo "# $2: every class as the generator made it ($EXP_MISMATCHES discrepancies)"
		return 0
	fi
	echo "# $2 DISAGREES with the generator: $_d"
	return 1
}
compare "$T/daemon.classes" lienthongd || BAD=1
jq -r '(.paths // .result.paths // {}) | to_entries[] | "\(.key) \(.value)"' "$R" 2>/dev/null |
	while read -r k p; do echo "# report file $k: $(wc -c <"$p") bytes"; done

if [ "$ALL_FORMATS" = 1 ]; then
	if report csv,xlsx,html,json all; then
		figure payment.report_all_formats_s "$(secs 0 "$MS")" s
	else
		figure payment.report_all_formats_s nan s
	fi
	figure payment.peak_rss_all_formats_mb "$(rss_mb "$D_PID" VmHWM)" MB
	figure payment.ctl_p99_all_formats_ms "$(val "$T/probe-all.out" p99_ms)" ms
	jq -r '(.paths // .result.paths // {}) | to_entries[] | "\(.key) \(.value)"' \
		"$T/report-all.json" 2>/dev/null |
		while read -r k p; do echo "# report file $k: $(wc -c <"$p") bytes"; done
fi
if [ -f "$T/perf.data" ]; then
	# inclusive shares: where the daemon's time went, callers included
	perf report -i "$T/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
		grep -E '^ +[0-9]' | head -50 | sed 's/^/# perf: /'
fi
daemon_stop

# ---- where the report's time goes ------------------------------------------------------------
if [ "$PHASES" = 1 ]; then
	"$BIN/bench/pay_gen" --phases "$STORE" >"$T/phases.out" 2>&1
	for k in load match describe; do
		figure "payment.${k}_s" "$(val "$T/phases.out" "${k}_s")" s
	done
	echo "# phases (pay_gen --phases, the store's API on one thread, the page cache warm):" \
		"load (store_pay_load) then peak RSS $(val "$T/phases.out" load_peak_rss_mb) MB," \
		"match (reconcile) then $(val "$T/phases.out" match_peak_rss_mb) MB; describe =" \
		"store_pay_describe + rec_explain for the $(val "$T/phases.out" listed) items listed"
fi

# ---- the analysts ---------------------------------------------------------------------------
# pending payments older than the daemon's query_max_age (2 days) before now
NOW_S=$(date +%s)
CUT=$(date -u -d "@$((NOW_S + 7 * 3600 - 2 * 86400))" +%Y%m%d%H%M%S)
CUT_ISO=$(date -u -d "@$((NOW_S + 7 * 3600 - 2 * 86400))" +%Y-%m-%dT%H:%M:%S)

PY=""
[ "$ANALYSTS" = 1 ] || PYTHON=none
for p in ${PYTHON:-python3 /usr/bin/python3}; do
	if "$p" -c 'import pandas' >/dev/null 2>&1; then
		PY=$p
		break
	fi
done
if [ "$ANALYSTS" != 1 ]; then
	:
elif [ -n "$PY" ]; then
	if "$PY" "$ROOT/bench/pandas_recon.py" "$DATA" "$CUT" "$T/pandas-mismatches.csv" \
		>"$T/pandas.out" 2>"$T/pandas.err"; then
		figure payment.pandas_s "$(awk '$2 == "total_s" {print $3}' "$T/pandas.out")" s
		figure payment.pandas_read_s "$(awk '$2 == "read_s" {print $3}' "$T/pandas.out")" s
		echo "# pandas $(awk '$2 == "version" {print $3}' "$T/pandas.out")," \
			"$("$PY" -c 'import numpy, platform; print("numpy", numpy.__version__ + ",", "python", platform.python_version())')"
		awk '$1 == "class" {print $2, $3}' "$T/pandas.out" >"$T/pandas.classes"
		compare "$T/pandas.classes" pandas || :
	else
		skipped payment.pandas_s "pandas_recon.py failed: $(tail -1 "$T/pandas.err")"
	fi
else
	skipped payment.pandas_s "no python3 with pandas (apt-get install python3-pandas)"
fi

if [ "$ANALYSTS" != 1 ]; then
	:
elif command -v sqlite3 >/dev/null; then
	cat >"$T/import.sql" <<SQL
CREATE TABLE tx (MaThamChieu TEXT, MaGiaoDich TEXT, MaHoSo TEXT, SoTien INTEGER,
	TrangThaiGD INTEGER, ThoiGianGD TEXT, verified INTEGER);
CREATE TABLE fees (maThamChieu TEXT, maHoSo TEXT, soTien INTEGER, trangThai TEXT,
	hinhThuc TEXT, thoiGian TEXT);
CREATE TABLE portal (MaHoSo TEXT, DuocThanhToanTrucTuyen INTEGER, SoDongLePhi INTEGER);
.import --csv --skip 1 $DATA/transactions.csv tx
.import --csv --skip 1 $DATA/fees.csv fees
.import --csv --skip 1 $DATA/portal.csv portal
SQL
	# the classes of daemon/reconcile.h as joins and anti-joins (no fallback
	# match on dossier and amount: this data needs none)
	cat >"$T/query.sql" <<SQL
CREATE INDEX tx_ref ON tx (MaThamChieu);
CREATE INDEX tx_hs ON tx (MaHoSo);
CREATE INDEX fees_ref ON fees (maThamChieu);
CREATE INDEX fees_hs ON fees (maHoSo);
CREATE INDEX portal_hs ON portal (MaHoSo);
-- each success with the fee record of its MaThamChieu, ranked among its
-- dossier's successes (the one the province recorded as paid, else the earliest)
CREATE TEMP TABLE succ AS
SELECT t.MaThamChieu AS ref, t.MaHoSo AS mahoso, t.SoTien AS platform_amount,
	f.rowid AS fee, f.trangThai AS local_state, f.soTien AS local_amount,
	row_number() OVER (PARTITION BY t.MaHoSo ORDER BY
		coalesce(f.trangThai = 'DA_THANH_TOAN', 0) DESC, t.ThoiGianGD, t.MaThamChieu) AS nth
FROM tx AS t LEFT JOIN fees AS f ON f.maThamChieu = t.MaThamChieu
WHERE t.verified = 1 AND t.TrangThaiGD = 1;
CREATE TEMP TABLE result AS
SELECT 'bad_signature' AS class, MaThamChieu AS ref, MaHoSo AS mahoso FROM tx WHERE verified = 0
UNION ALL
SELECT CASE WHEN nth > 1 THEN 'paid_twice'
	WHEN fee IS NULL THEN CASE WHEN EXISTS (SELECT 1 FROM fees WHERE maHoSo = s.mahoso)
		OR EXISTS (SELECT 1 FROM portal WHERE MaHoSo = s.mahoso) THEN 'platform_only'
		ELSE 'unknown_dossier' END
	WHEN local_state <> 'DA_THANH_TOAN' THEN 'platform_only'
	WHEN local_amount = platform_amount THEN 'matched'
	ELSE 'amount_differs' END, ref, mahoso FROM succ AS s
UNION ALL
SELECT 'pending_too_long', MaThamChieu, MaHoSo FROM tx
WHERE verified = 1 AND TrangThaiGD = 3 AND ThoiGianGD < '$CUT'
UNION ALL
SELECT 'pending_too_long', maThamChieu, maHoSo FROM fees AS f
WHERE trangThai = 'CHO_XAC_NHAN' AND hinhThuc = 'TRUC_TUYEN' AND thoiGian < '$CUT_ISO'
	AND NOT EXISTS (SELECT 1 FROM tx AS t WHERE t.MaThamChieu = f.maThamChieu AND
		(t.verified = 0 OR t.TrangThaiGD = 1 OR (t.TrangThaiGD = 3 AND t.ThoiGianGD < '$CUT')))
UNION ALL
SELECT 'local_only', maThamChieu, maHoSo FROM fees AS f
WHERE trangThai = 'DA_THANH_TOAN' AND hinhThuc = 'TRUC_TUYEN'
	AND NOT EXISTS (SELECT 1 FROM tx AS t WHERE t.MaThamChieu = f.maThamChieu
		AND (t.verified = 0 OR t.TrangThaiGD = 1))
UNION ALL
SELECT 'portal_without_fee', NULL, MaHoSo FROM portal AS p
WHERE (DuocThanhToanTrucTuyen = 0 OR SoDongLePhi = 0) AND EXISTS (SELECT 1 FROM tx AS t
	WHERE t.MaHoSo = p.MaHoSo AND t.verified = 1 AND t.TrangThaiGD = 1);
.mode csv
.headers on
.once $T/sqlite-mismatches.csv
SELECT * FROM result WHERE class <> 'matched';
.mode list
.headers off
.separator " "
SELECT class, count(*) FROM result GROUP BY class;
SQL
	rm -f "$T/analyst.db"
	t0=$(now_ms)
	sqlite3 "$T/analyst.db" <"$T/import.sql" >"$T/sqlite-import.out" 2>&1
	t1=$(now_ms)
	sqlite3 "$T/analyst.db" <"$T/query.sql" >"$T/sqlite.classes" 2>"$T/sqlite.err"
	t2=$(now_ms)
	if [ -s "$T/sqlite.classes" ] && [ ! -s "$T/sqlite.err" ]; then
		figure payment.sqlite_s "$(secs "$t0" "$t2")" s
		figure payment.sqlite_import_s "$(secs "$t0" "$t1")" s
		figure payment.sqlite_query_s "$(secs "$t1" "$t2")" s
		echo "# sqlite3 $(sqlite3 --version | cut -d' ' -f1)"
		compare "$T/sqlite.classes" sqlite3 || :
	else
		skipped payment.sqlite_s "the sqlite3 queries failed: $(head -c 300 "$T/sqlite.err" "$T/sqlite-import.out")"
	fi
	rm -f "$T/analyst.db"
else
	skipped payment.sqlite_s "no sqlite3 CLI (apt-get install sqlite3)"
fi

[ "$BAD" = 0 ] || { echo "# the daemon's reconciliation failed or was wrong: see above"; exit 1; }
