#!/bin/sh
# System test of the payment flow (issue 5; docs/contracts/payment-spec.md):
# the real lienthongd reconciles the simulator's payment platform, the
# provincial fee records and what its own dossier flow pushed to the
# (simulated) portal, and writes the office's reports.
#
#   1. every class on seeded data: for each discrepancy class the open
#      payment.<class> mismatches are exactly the simulator's expected keys
#      of the days of the plan (at least 3 of each, so that nothing passes
#      vacuously); the reports' matched count is the expected one;
#   2. a second pass over the same data changes nothing but the
#      occurrences (same ids, same states, same counts, nothing new);
#   3. the operator's workflow survives passes: a resolved mismatch found
#      again reopens (resolved then reopened in its history), a waived one
#      stays waived, an acknowledged one stays acknowledged;
#   4. reports: the daily and monthly files of a pass, `report payments`
#      (paths in text and JSON), read back independently
#      (tests/helpers/report_read.py): XLSX summary = mismatch counts, CSV
#      with BOM and Vietnamese labels, HTML well-formed, JSON ids masked, no
#      citizen id in clear in any file (the XLSX unzipped too); bad
#      arguments exit 1 with a clear message;
#   7. a platform that fails: the pass fails naming the list, nothing stored
#      is lost, the next pass after the fault is ok;
#   6. QUERY: payments awaiting confirmation are asked about between
#      query_min_age and query_max_age (answers stored, source 'query'),
#      past query_max_age they are pending_too_long again;
#   5. the list as dropped files (CSV and JSON): the same classes, the file
#      to done/; amounts as text and duplicated rows are mismatches naming
#      the row and lose nothing else (a row still listed, only damaged, is
#      not taken as gone); a cut file goes to failed/ with a reason, keeps
#      its good rows and leaves the day's mismatches alone; a file that is
#      not UTF-8: its bad rows are mismatches, the rest kept, nothing
#      stored removed;
#   8. after a restart everything is still there, and the control socket
#      answers `status` while a large `report payments` is being written.
#
# The parts run in the order 1 2 3 4 7 6 5 8: from 7 on each one changes the
# simulator's faults or the configuration (reload) of the one before.
#
# The simulator's window is --dossier-days 4 (not 1): its pending_too_long
# attempts are at least 3 days old, and with a one-day window nearly all of
# them would fall before the plan (days = 4 and today). "now" of the stream
# is the start of the current hour, so that the plan of the real daemon
# (real time) holds it; --seed fixes everything else.
#
# Usage: BUILD=build sh tests/system/test_payment.sh
# (needs curl, jq, sqlite3, python3, unzip, iconv)
. "$(dirname "$0")/lib.sh"

no_proxy=127.0.0.1,localhost
NO_PROXY=$no_proxy
export no_proxy NO_PROXY

CLASSES="platform_only local_only amount_differs paid_twice pending_too_long bad_signature portal_without_fee unknown_dossier"
FAULTS=20 # per 1,000 dossiers: about 20 of each class, 12 or more in the plan
NOW=$(TZ=Asia/Ho_Chi_Minh date +%Y-%m-%dT%H:00:00+07:00)
RR="python3 $(cd "$(dirname "$0")/../helpers" && pwd)/report_read.py"
DB=$T/state/lienthong.db
REP=$T/reports
DROP=$T/drop
# The Vietnamese labels of the classes in the office's reports (report.c).
LABELS='{"Khớp":"matched",
	"Đã thanh toán trên nền tảng, tỉnh chưa ghi nhận":"platform_only",
	"Tỉnh ghi đã thanh toán, không có giao dịch thành công":"local_only",
	"Số tiền lệch":"amount_differs","Hồ sơ thanh toán hai lần":"paid_twice",
	"Chờ xác nhận quá hạn":"pending_too_long","Sai chữ ký (MaXacThuc)":"bad_signature",
	"Đã thanh toán trực tuyến nhưng gửi Cổng thiếu thông tin phí":"portal_without_fee",
	"Giao dịch không thuộc hồ sơ nào của tỉnh":"unknown_dossier"}'

# ---- helpers ----------------------------------------------------------------------

# write_conf [PAYMENT_FLOW_LINES] [MORE_SECTIONS]: the whole configuration:
# the dossier flow (provincial feed -> portal), the paygov connector and the
# payment flow, all on the simulator.
write_conf() {
	write_base_conf "$T/l.conf"
	dossier_conf "$T/l.conf"
	cat >>"$T/l.conf" <<CONF

[connector.paygov]
type = paygov
url = $SIM_URL/paygov
token = $T/paygov.token
partner = HUNGYEN
key = $T/paygov.key
max_attempts = 2
backoff_base = 20ms
breaker_failures = 0
${2:-}

[flow.payment]
platform = paygov
fees = province
days = 4
today = true
interval = 1h
reports_dir = $REP
${1:-}
CONF
}
reload() { ctl_json reload >"$T/reload.out" 2>&1; }

# pay VALUE: jq VALUE of the payment flow in `status` (empty when no answer).
pay() { ctl_json status 2>/dev/null | jq -r ".flows[] | select(.name == \"payment\") | $1"; }
runs_past() {
	_n=$(pay '.runs_ok + .runs_failed')
	[ -n "$_n" ] && [ "$_n" -gt "$1" ]
}
# pay_pass: starts a payment pass and waits until it has ended.
pay_pass() {
	_r0=$(pay '.runs_ok + .runs_failed')
	[ -n "$_r0" ] || return 1
	ctl_json run payment >"$T/run.out" 2>&1 || return 1
	wait_until 30 runs_past "$_r0"
}
# pass_checked WHAT: pay_pass, and a failed check naming WHAT if it did not end.
pass_checked() {
	pay_pass || fail "$1: the payment pass did not end ($(cat "$T/run.out" 2>/dev/null))"
}
dossier_caught_up() {
	status_is '.flows[] | select(.name == "dossier") | .detail.pass.caught_up and
		.detail.queue.depth == 0 and .detail.queue.rows_pending == 0 and .detail.pass.changes > 0'
}

# mm_all FILE: every payment mismatch (all kinds and states) into FILE as
# [{id, kind, key, state, occurrences, summary, day}] sorted by id.
mm_all() {
	rm -f "$1"
	ctl_json mismatches --kind 'payment.*' --limit 100000 >"$T/mm.raw" || return 1
	[ -s "$T/mm.raw" ] || return 1
	jq '[.mismatches[] | {id, kind, key, state, occurrences, summary,
		day: (try (.detail | fromjson | .day) catch null)}] | sort_by(.id)' "$T/mm.raw" >"$1"
}
# same_mm A B: the same mismatches (ids, kinds, keys, states) in A and B.
same_mm() {
	jq -e -n --slurpfile a "$1" --slurpfile b "$2" \
		'($a[0] | length) > 0 and ($a[0] | map({id, kind, key, state})) == ($b[0] | map({id, kind, key, state}))' >/dev/null
}
# exp_union CLASS: the simulator's expected keys of CLASS over the plan, sorted.
exp_union() { jq -r --arg c "$1" '.classes[$c][]' "$T"/exp.*.json | sort -u; }
# open_keys CLASS [DAY]: the open payment.CLASS mismatches' keys (of DAY), sorted.
open_keys() {
	jq -r --arg k "payment.$1" --arg d "${2:-}" '.[] | select(.kind == $k and .state == "open" and
		($d == "" or .day == $d)) | .key' "$T/mm.now" | sort -u
}
# dossier_of: the dossier codes of mismatch keys read on stdin (MaThamChieu is
# maHoSo "-" yyyyMMddHHmmss; a portal_without_fee key is the maHoSo itself).
dossier_of() { sed -E 's/-[0-9]{14}$//'; }
# classes_ok [DAY] [SKIP_FILE]: for every class, the open mismatches are the
# expected keys (of DAY, else of the whole plan), leaving out on both sides
# the dossiers listed in SKIP_FILE (rows a list no longer holds whole);
# prints the differences.
classes_ok() {
	mm_all "$T/mm.now" || return 1
	_bad=0
	_skip=${2:-/dev/null}
	for _c in $CLASSES; do
		if [ -n "${1:-}" ]; then
			jq -r --arg c "$_c" '.classes[$c][]' "$T/exp.$1.json" | sort -u >"$T/e.$_c"
		else
			exp_union "$_c" >"$T/e.$_c"
		fi
		open_keys "$_c" "${1:-}" >"$T/g.$_c"
		for _f in "$T/e.$_c" "$T/g.$_c"; do
			dossier_of <"$_f" | paste - "$_f" |
				awk -F '\t' 'FILENAME == ARGV[1] { skip[$0]; next } !($1 in skip) { print $2 }' "$_skip" - >"$_f.k"
		done
		if ! cmp -s "$T/e.$_c.k" "$T/g.$_c.k"; then
			echo "$_c: expected vs found:"
			comm -3 "$T/e.$_c.k" "$T/g.$_c.k" | head -5
			_bad=1
		fi
	done
	[ "$_bad" = 0 ]
}
# bad_rows KIND FILE: the open payment.KIND mismatches about list file FILE (keys, sorted).
bad_rows() {
	mm_all "$T/mm.now" || return 1
	jq -r --arg k "payment.$1" --arg f "$2" '.[] | select(.kind == $k and .state == "open" and
		(.summary | contains($f))) | .key' "$T/mm.now" | sort
}
sim_post() { curl -sf -X POST -d "$2" "$SIM_URL$1" >"$T/sim.ans"; }
qstat() { curl -sf "$SIM_URL/_sim/payment/stats" | jq -r "$1"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# compact YYYY-MM-DD -> YYYYMMDD
compact() { echo "$1" | tr -d -; }

[ -x "$BIN/lienthongd" ] && [ -x "$BIN/lienthong-sim" ] ||
	{ fail "binaries not built in $BUILD"; finish; exit 1; }

# ---- setup: the simulator, the dossier flow caught up -------------------------------
sim_start --dossier-now "$NOW" --dossier-days 4 --payment-faults "$FAULTS" ||
	{ fail "simulator did not start"; finish; exit 1; }
secret_file paygov.token paygov-secret-token >/dev/null
secret_file paygov.key paygov-partner-key >/dev/null
mkdir -p "$DROP"
write_conf
daemon_start "$T/l.conf" || { fail "daemon did not start"; finish; exit 1; }
# The portal must have every dossier's header before the payment pass, so
# that portal_without_fee can be judged (as tools/demo.sh waits).
check "the dossier flow pushed the whole feed to the portal first" wait_until 30 dossier_caught_up

# ---- 1. every class on seeded data ---------------------------------------------------
pass_checked "first pass"
check "the first pass ended ok" [ "$(pay .runs_ok)" = 1 ]
# the plan the daemon used: "pass started: FIRST..LAST" (Asia/Ho_Chi_Minh days)
PLAN=$(sed -n 's/.*payment: pass started: \([0-9-]*\)\.\.\([0-9-]*\).*/\1 \2/p' "$T/daemon.log" | head -1)
P_FROM=${PLAN% *}
P_TO=${PLAN#* }
DAYS=""
d=$P_FROM
while [ -n "$d" ] && [ "$(compact "$d")" -le "$(compact "$P_TO")" ]; do
	DAYS="$DAYS $d"
	d=$(date -u -d "$d + 1 day" +%F)
done
for d in $DAYS; do
	curl -sf "$SIM_URL/_sim/payment/expected?ngay=$d" >"$T/exp.$d.json" || fail "expected of $d"
done
check "the plan is the 4 days before today and today (5 days: $P_FROM..$P_TO)" \
	[ "$(echo $DAYS | wc -w)" = 5 ]
check "the seeded data has at least 3 of every class in the plan (not vacuous)" sh -c "
	for c in $CLASSES; do
		n=\$(jq -r --arg c \$c '.classes[\$c][]' '$T'/exp.*.json | sort -u | wc -l)
		[ \"\$n\" -ge 3 ] || { echo \"\$c: \$n\"; exit 1; }
	done"
mm_all "$T/mm.now"
for c in $CLASSES; do
	exp_union "$c" >"$T/e.$c"
	open_keys "$c" >"$T/g.$c"
	if [ -s "$T/e.$c" ] && cmp -s "$T/e.$c" "$T/g.$c"; then
		pass "$c: the open payment.$c mismatches are exactly the simulator's expected keys ($(wc -l <"$T/e.$c"))"
	else
		fail "$c: the open payment.$c mismatches are exactly the simulator's expected keys"
		comm -3 "$T/e.$c" "$T/g.$c" | head -10 | sed 's/^/#   /'
	fi
done
N_EXP=$(for c in $CLASSES; do exp_union "$c"; done | wc -l)
check "no other payment mismatch: $N_EXP in all, none malformed_row/duplicate_row/malformed_fee" \
	jq -e "length == $N_EXP" "$T/mm.now"
N_MATCHED=$(jq -r '.classes.matched[]' "$T"/exp.*.json | sort -u | wc -l)
ctl_json report payments --from "$P_FROM" --to "$P_TO" >"$T/range.json" 2>"$T/range.err"
check "the report of the plan counts the expected matched payments ($N_MATCHED)" \
	jq -e ".summary.matched.count == $N_MATCHED and $N_MATCHED > 0" "$T/range.json"
check "... and so do the daily JSON reports of the pass, added up" sh -c "
	for d in $DAYS; do c=\$(echo \$d | tr -d -); cat '$REP'/doi-soat-thanh-toan_\${c}_\${c}.json; done |
		jq -e -s '(map(.summary.matched.count) | add) == $N_MATCHED' >/dev/null"
check "status: the last pass says how many payments matched" sh -c "
	$BIN/lienthongctl --socket '$T/ctl.sock' --json status |
		jq -e '.flows[] | select(.name == \"payment\") | .last_summary | test(\"; $N_MATCHED matched, \")' >/dev/null"

# ---- 2. idempotent rerun ----------------------------------------------------------------
cp "$T/mm.now" "$T/mm.1"
ctl_json mismatches --kind 'payment.*' --limit 1 | jq -c .counts >"$T/counts.1"
pass_checked "rerun"
mm_all "$T/mm.2"
ctl_json mismatches --kind 'payment.*' --limit 1 | jq -c .counts >"$T/counts.2"
check "a second pass leaves the same mismatches (ids, kinds, keys, states), none new" same_mm "$T/mm.1" "$T/mm.2"
check "... the same counts by state" sh -c "[ -s '$T/counts.1' ] && cmp -s '$T/counts.1' '$T/counts.2'"
check "... and each was seen once more (occurrences + 1)" jq -e -n --slurpfile a "$T/mm.1" --slurpfile b "$T/mm.2" \
	'[$a[0], $b[0]] | transpose | all(.[0].occurrences + 1 == .[1].occurrences)'

# ---- 3. the operator's workflow --------------------------------------------------------------
ID_R=$(jq -r '[.[] | select(.kind == "payment.platform_only")][0].id' "$T/mm.2")
ID_W=$(jq -r '[.[] | select(.kind == "payment.amount_differs")][0].id' "$T/mm.2")
ID_A=$(jq -r '[.[] | select(.kind == "payment.local_only")][0].id' "$T/mm.2")
check "resolve, waive and ack a payment mismatch each" sh -c "
	$BIN/lienthongctl --socket '$T/ctl.sock' resolve $ID_R --note 'đã ghi nhận tại tỉnh' &&
	$BIN/lienthongctl --socket '$T/ctl.sock' waive $ID_W --note 'chênh lệch do làm tròn, không cần xử lý' &&
	$BIN/lienthongctl --socket '$T/ctl.sock' ack $ID_A --note 'kế toán đang kiểm tra'"
pass_checked "workflow"
check "a resolved mismatch found again is open again" json_is "mismatch $ID_R" '.state == "open"'
check "... with its history: resolved (with the note), then reopened" json_is "mismatch $ID_R" '
	[.events[].event] as $e | ($e | index("resolved")) as $r | $r != null and
	($e[$r + 1:] | index("reopened")) != null and
	any(.events[]; .event == "resolved" and .note == "đã ghi nhận tại tỉnh")'
check "a waived mismatch stays waived after a pass" json_is "mismatch $ID_W" '.state == "waived"'
check "an acknowledged mismatch stays acknowledged after a pass" json_is "mismatch $ID_A" '.state == "acknowledged"'

# ---- 4. reports -------------------------------------------------------------------------------
missing=""
for d in $DAYS; do
	c=$(compact "$d")
	for x in csv xlsx html json; do
		[ -s "$REP/doi-soat-thanh-toan_${c}_${c}.$x" ] || missing="$missing ${c}.$x"
	done
done
check "a pass writes the daily reports of every day matched (csv, xlsx, html, json)" [ -z "$missing" ]
# the monthly reports: each month of the plan, from its first day to its last day in the plan
missing=""
for m in $(for d in $DAYS; do compact "$d" | cut -c1-6; done | sort -u); do
	last=$(for d in $DAYS; do compact "$d"; done | grep "^$m" | tail -1)
	for x in csv xlsx html json; do
		[ -s "$REP/doi-soat-thanh-toan_${m}01_${last}.$x" ] || missing="$missing ${m}01_${last}.$x"
	done
done
check "... and the monthly report (first day of the month .. last day matched)" [ -z "$missing" ]

R=$REP/doi-soat-thanh-toan_$(compact "$P_FROM")_$(compact "$P_TO")
rm -f "$R".*
expect "report payments --from $P_FROM --to $P_TO exits 0" 0 ctl report payments --from "$P_FROM" --to "$P_TO"
check "... and prints the path of each file it wrote (4), which exist" sh -c "
	for x in csv xlsx html json; do grep -q -F '$R.'\$x '$T/out' && [ -s '$R'.\$x ] || exit 1; done"
ctl_json report payments --from "$P_FROM" --to "$P_TO" >"$T/rep.json"
check "report --json: paths of csv, xlsx, html and json" \
	jq -e "(.paths | keys) == [\"csv\",\"html\",\"json\",\"xlsx\"] and .paths.csv == \"$R.csv\" and .paths.xlsx == \"$R.xlsx\"" "$T/rep.json"

# citizens' ids of the feed's dossiers: none may appear in clear in a report
feed_fetch "$T/ids.feed" '.hoSo.chuHoSo.soGiayTo // empty' || fail "reading the change feed"
tr -d '"' <"$T/ids.feed" | grep -E '^[0-9A-Za-z]{7,}$' | sort -u >"$T/ids"

mm_all "$T/mm.now"
$RR xlsx "$R.xlsx" >"$T/x.json"
check "XLSX: a sound workbook (read back by report_read.py)" jq -e '.problems == [] and (.sheets | length) > 1' "$T/x.json"
check "XLSX: the summary sheet's count of every class = the payment mismatches of that kind" \
	jq -e -n --slurpfile x "$T/x.json" --slurpfile m "$T/mm.now" --argjson L "$LABELS" "
	(\$x[0].sheets[0].rows | map(select(length >= 2 and (.[0] | type) == \"string\" and \$L[.[0]] != null)) |
		map({key: \$L[.[0]], value: .[1]}) | from_entries) as \$s |
	(\$m[0] | group_by(.kind) | map({key: (.[0].kind | ltrimstr(\"payment.\")), value: length}) | from_entries) as \$k |
	(\$s | length) == 9 and \$s.matched == $N_MATCHED and
	all(\"$CLASSES\" | split(\" \")[]; . as \$c | \$s[\$c] == \$k[\$c] and \$k[\$c] > 0)"
$RR csv "$R.csv" >"$T/c.json"
check "CSV: a UTF-8 BOM, RFC 4180, Vietnamese column labels" jq -e '.problems == [] and .bom == true and
	(.rows[0] | index("Loại chênh lệch") != null and index("Mã tham chiếu") != null and
		index("Người nộp (đã che)") != null and index("Giải thích") != null)' "$T/c.json"
check "CSV: one row per payment mismatch, each class by its Vietnamese label" \
	jq -e -n --slurpfile c "$T/c.json" --slurpfile m "$T/mm.now" --argjson L "$LABELS" '
	($c[0].rows[1:]) as $r | ($r | length) == ($m[0] | length) and
	all($r[]; $L[.[0]] != null) and ([$r[] | .[0]] | unique | length) == 8'
$RR html "$R.html" >"$T/h.json"
check "HTML: well-formed, self-contained, lang vi (report_read.py)" \
	jq -e '.problems == [] and .xml_ok == true and (.sections | index("tong-hop")) != null' "$T/h.json"
check "JSON: every applicant_id masked (3 characters, stars, 3 characters)" jq -e '
	[.items[] | .applicant_id | strings] as $a | ($a | length) > 0 and
	all($a[]; test("^[^*]{3}[*]+[^*]{3}$"))' "$R.json"
check "the citizens' ids read from the feed are the ones masked in the report (the grep below is not vacuous)" \
	jq -e -R -n --slurpfile r "$R.json" '[inputs] as $ids | ($ids | length) > 100 and
	all($r[0].items[] | .applicant_id | strings; . as $m |
		any($ids[]; length == ($m | length) and .[0:3] == $m[0:3] and .[-3:] == $m[-3:]))' "$T/ids"
check "no citizen id in clear in any report file (csv, html, json, and every part of every xlsx)" sh -c "
	[ -s '$T/ids' ] || exit 1
	! grep -l -F -f '$T/ids' '$REP'/*.csv '$REP'/*.html '$REP'/*.json || exit 1
	for x in '$REP'/*.xlsx; do ! unzip -p \"\$x\" | grep -q -F -f '$T/ids' || { echo \$x; exit 1; }; done"
check "no 12-digit number standing alone (a citizen id) in any report file, the XLSX parts included" sh -c "
	! grep -l -E '(^|[^0-9])[0-9]{12}([^0-9]|\$)' '$REP'/*.csv '$REP'/*.html '$REP'/*.json || exit 1
	for x in '$REP'/*.xlsx; do ! unzip -p \"\$x\" | grep -q -E '(^|[^0-9])[0-9]{12}([^0-9]|\$)' || { echo \$x; exit 1; }; done"
check "report_read.py --forbid finds no id in clear in the XLSX either" sh -c "
	$RR xlsx '$R.xlsx' --brief \$(head -50 '$T/ids' | sed 's/^/--forbid /') | jq -e '.problems == []' >/dev/null"
check "no citizen id in clear in the mismatch log either" sh -c "! grep -q -F -f '$T/ids' '$T/mm.raw'"

expect "report --from 2026-13-01: exit 1" 1 ctl report payments --from 2026-13-01 --to "$P_TO"
has "... saying dates are YYYY-MM-DD" "$T/err" "dates are YYYY-MM-DD: --from '2026-13-01'"
expect "report with --to before --from: exit 1" 1 ctl report payments --from "$P_TO" --to "$P_FROM"
has "... saying the range must run forward" "$T/err" "the range must run forward"
expect "report foo: exit 1" 1 ctl report foo --from "$P_FROM" --to "$P_TO"
has "... saying which reports there are" "$T/err" "report 'foo': the reports are: payments"

# ---- 7. a platform that fails ----------------------------------------------------------------
mm_all "$T/mm.before_fault"
F0=$(pay .runs_failed)
O0=$(pay .runs_ok)
sim_faults '{"path":"/paygov","error_rate":1}'
pass_checked "fault"
check "while /paygov answers 500 the pass fails" [ "$(pay .runs_failed)" = $((F0 + 1)) ]
check "... its last_error names the list that could not be read" sh -c "
	$BIN/lienthongctl --socket '$T/ctl.sock' --json status | jq -e '.flows[] | select(.name == \"payment\") |
		.last_error | strings | test(\"list of 20[0-9-]{8}\")' >/dev/null"
mm_all "$T/mm.fault"
check "... and nothing stored is lost: the same mismatches, the same states" same_mm "$T/mm.before_fault" "$T/mm.fault"
sim_faults '{"reset":true}'
pass_checked "after the fault"
check "the fault cleared, the next pass is ok" [ "$(pay .runs_ok)" = $((O0 + 1)) ]
mm_all "$T/mm.after_fault"
check "... and finds the same mismatches" same_mm "$T/mm.before_fault" "$T/mm.after_fault"

# ---- 6. QUERY ------------------------------------------------------------------------------------
N_PEND=$(exp_union pending_too_long | wc -l)
write_conf 'query_min_age = 0s
query_max_age = 10d'
check "reload: query_min_age 0s, query_max_age 10d" reload
Q0=$(qstat .query_requests)
QP0=$(qstat .query_answers.pending)
pass_checked "query"
check "a pass sends QUERY for every payment awaiting confirmation ($N_PEND)" [ "$(qstat .query_requests)" = $((Q0 + N_PEND)) ]
exp_union pending_too_long >"$T/e.pend"
check "... and stores each answer (pay_tx rows of source 'query': the pending attempts)" wait_until 3 sh -c "
	sqlite3 -readonly '$DB' \"SELECT ref FROM pay_tx WHERE source = 'query' AND state = 3 AND verified = 1\" |
		sort | cmp -s - '$T/e.pend'"
mm_all "$T/mm.now"
check "an attempt younger than query_max_age is not pending_too_long yet (resolved while it is asked about)" \
	sh -c "[ -z \"\$(jq -r '.[] | select(.kind == \"payment.pending_too_long\" and .state == \"open\") | .key' '$T/mm.now')\" ]"
sim_post /_sim/payment '{"op":"malformed","kind":"query_pending"}'
Q1=$(qstat .query_requests)
pass_checked "query_pending"
check "query_pending: QUERY is sent again and the answers stay pending" wait_until 3 sh -c "
	[ \"\$(curl -sf '$SIM_URL/_sim/payment/stats' | jq -r '.query_requests, .query_answers.pending' | tr '\n' ' ')\" = \"$((Q1 + N_PEND)) $((QP0 + 2 * N_PEND)) \" ] &&
	[ \"\$(sqlite3 -readonly '$DB' \"SELECT count(*) FROM pay_tx WHERE source = 'query' AND state = 3\")\" = $N_PEND ]"
write_conf 'query_min_age = 0s
query_max_age = 2d'
check "reload: query_max_age 2d again" reload
Q2=$(qstat .query_requests)
pass_checked "query_max_age short"
check "past query_max_age an attempt is no longer asked about" [ "$(qstat .query_requests)" = "$Q2" ]
check "... and is pending_too_long again: exactly the expected ones" sh -c "
	$BIN/lienthongctl --socket '$T/ctl.sock' --json mismatches --kind payment.pending_too_long --state open --limit 1000 |
		jq -r '.mismatches[].key' | sort | cmp -s - '$T/e.pend'"
ID_P=$(ctl_json mismatches --kind payment.pending_too_long --limit 1 | jq -r '.mismatches[0].id')
check "... reopened, with its history (resolved by the pass, then reopened)" json_is "mismatch $ID_P" '
	[.events[].event] as $e | ($e | index("resolved")) as $r | $r != null and ($e[$r + 1:] | index("reopened")) != null'
sim_post /_sim/payment '{"op":"reset"}'

# ---- 5. the list as dropped files --------------------------------------------------------------
write_conf 'list_files = drop' "
[connector.drop]
type = files
in_dir = $DROP
min_age = 0"
check "reload: list_files = drop (a files connector)" reload
check "status: the flow reads the list from the drop folder" sh -c "
	$BIN/lienthongctl --socket '$T/ctl.sock' --json status | jq -e '.flows[] | select(.name == \"payment\") | .detail.list_files == \"drop\"' >/dev/null"
# the two days of the plan with the most transactions
curl -sf "$SIM_URL/_sim/payment/stats" >"$T/pstats"
set -- $(jq -r --arg days "$DAYS" '[.days | to_entries[] | select(.key as $k | $days | split(" ") | index($k))] |
	sort_by(-.value.transactions) | .[0:2][] | .key' "$T/pstats")
DC=$1 # CSV
DJ=$2 # JSON
CC=$(compact "$DC")
CJ=$(compact "$DJ")
NC=$(jq -r --arg d "$DC" '.days[$d].transactions' "$T/pstats")
NJ=$(jq -r --arg d "$DJ" '.days[$d].transactions' "$T/pstats")
FC=giao-dich-$CC.csv
FJ=giao-dich-$CJ.json
export_day() { sim_post /_sim/payment/export "{\"ngay\":\"$1\",\"format\":\"$2\",\"dir\":\"$DROP\"}"; }
# list_page FILE: the platform's list of $DC as served now (the same rows, in the same order, as the file)
list_page() {
	curl -sf -H 'Authorization: Bearer paygov-secret-token' \
		"$SIM_URL/paygov/api/v1/giao-dich?ngay=$DC&limit=5000" >"$1"
}
# stored DAY SINCE_MS: transactions of DAY (yyyymmdd) stored from a file since SINCE_MS
stored() { sqlite3 -readonly "$DB" "SELECT count(*) FROM pay_tx WHERE day = $1 AND source = 'file' AND seen_ms >= $2"; }
stored_is() { [ "$(stored "$1" "$2")" = "$3" ]; }
list_page "$T/page.clean"
check "the simulator exports $DC as CSV ($NC transactions) and $DJ as JSON ($NJ)" sh -c "
	curl -sf -X POST -d '{\"ngay\":\"$DC\",\"format\":\"csv\",\"dir\":\"$DROP\"}' '$SIM_URL/_sim/payment/export' >/dev/null &&
	curl -sf -X POST -d '{\"ngay\":\"$DJ\",\"format\":\"json\",\"dir\":\"$DROP\"}' '$SIM_URL/_sim/payment/export' >/dev/null &&
	[ -s '$DROP/$FC' ] && [ -s '$DROP/$FJ' ] && [ $NC -gt 8 ] && [ $NJ -gt 8 ]"
T0=$(now_ms)
pass_checked "files"
check "the files read go to drop/done/" sh -c "[ -s '$DROP/done/$FC' ] && [ -s '$DROP/done/$FJ' ] && [ ! -e '$DROP/$FC' ] && [ ! -e '$DROP/$FJ' ]"
check "every transaction of the CSV file is stored from it ($NC)" wait_until 3 stored_is "$CC" "$T0" "$NC"
check "every transaction of the JSON file is stored from it ($NJ)" wait_until 3 stored_is "$CJ" "$T0" "$NJ"
check "from the CSV file: the same classes of $DC as the simulator expects" classes_ok "$DC"
check "from the JSON file: the same classes of $DJ as the simulator expects" classes_ok "$DJ"

# amounts as text, every 4th row (rows 1, 5, 9, ...)
sim_post /_sim/payment '{"op":"malformed","kind":"amount_text","every":4}'
export_day "$DC" csv
list_page "$T/page.amount"
sim_post /_sim/payment '{"op":"reset"}'
jq -r '.items[] | select(.SoTien | type == "string") | .MaThamChieu + "/" + .MaGiaoDich' "$T/page.amount" | sort >"$T/e.amount"
jq -r '.items[] | select(.SoTien | type == "string") | .MaHoSo' "$T/page.amount" | sort -u >"$T/skip.amount"
NA=$(wc -l <"$T/e.amount")
TA=$(now_ms)
pass_checked "amount_text"
bad_rows malformed_row "$FC" >"$T/g.amount"
check "amounts as text: one payment.malformed_row per such row ($NA), keyed by its MaThamChieu/MaGiaoDich" \
	sh -c "[ -s '$T/e.amount' ] && cmp -s '$T/e.amount' '$T/g.amount'"
check "... each naming its row (line, row number) and saying what is wrong with SoTien" sh -c "
	jq -r --arg f '$FC' '.[] | select(.kind == \"payment.malformed_row\" and .state == \"open\" and (.summary | contains(\$f))) | .summary' '$T/mm.now' >'$T/s.amount'
	[ \$(wc -l <'$T/s.amount') = $NA ] && ! grep -v -E 'line [0-9]+ \\(row [0-9]+\\).*SoTien' '$T/s.amount' &&
	sed -E 's/.*\\(row ([0-9]+)\\).*/\\1/' '$T/s.amount' | awk '(\$1 - 1) % 4 != 0 { exit 1 }'"
check "... the other rows are stored ($((NC - NA)))" wait_until 3 stored_is "$CC" "$TA" $((NC - NA))
check "... and nothing else of $DC is lost: every other dossier keeps its classes" classes_ok "$DC" "$T/skip.amount"
# A damaged row is still listed by the platform: the transaction stored from
# an earlier read of it must not be taken as gone (removing it would turn its
# fee record into a false local_only and resolve its real mismatches).
check "... and the damaged rows' transactions are not taken as gone: no class of $DC changes" classes_ok "$DC"
check "... the file goes to done/ (it was whole)" [ -s "$DROP/done/$FC" ]

# a duplicated row, every 5th (rows 1, 6, 11, ...)
sim_post /_sim/payment '{"op":"malformed","kind":"duplicate_row","every":5}'
export_day "$DC" csv
sim_post /_sim/payment '{"op":"reset"}'
jq -r '.items | to_entries[] | select(.key % 5 == 0) | .value | .MaThamChieu + "/" + .MaGiaoDich' "$T/page.clean" | sort >"$T/e.dup"
ND=$(wc -l <"$T/e.dup")
pass_checked "duplicate_row"
bad_rows duplicate_row "$FC" >"$T/g.dup"
check "a duplicated row: one payment.duplicate_row per repeated row ($ND), keyed by MaThamChieu/MaGiaoDich" \
	sh -c "[ -s '$T/e.dup' ] && cmp -s '$T/e.dup' '$T/g.dup'"
check "... each naming the line of the repeat and of the first" sh -c "
	jq -r --arg f '$FC' '.[] | select(.kind == \"payment.duplicate_row\" and .state == \"open\" and (.summary | contains(\$f))) | .summary' '$T/mm.now' >'$T/s.dup'
	[ \$(wc -l <'$T/s.dup') = $ND ] && ! grep -v -E 'line [0-9]+ .*again, first at line [0-9]+' '$T/s.dup'"
check "... nothing of $DC is lost (the first of each kept): every class as expected" classes_ok "$DC"
bad_rows malformed_row "$FC" >"$T/g.amount2"
check "a list read whole again resolves the earlier malformed_row mismatches of its rows" sh -c "[ ! -s '$T/g.amount2' ]"
mm_all "$T/mm.before_cut"

# a truncated file: cut in the middle
sim_post /_sim/payment '{"op":"malformed","kind":"truncated"}'
export_day "$DC" csv
sim_post /_sim/payment '{"op":"reset"}'
F1=$(pay .runs_failed)
T1=$(now_ms)
pass_checked "truncated"
check "a cut file goes to drop/failed/ with a .reason file" sh -c "
	[ -s '$DROP/failed/$FC' ] && [ -s '$DROP/failed/$FC.reason' ] && [ ! -e '$DROP/$FC' ]"
check "... the reason says the list is incomplete" grep -q -i 'incomplete' "$DROP/failed/$FC.reason"
check "... the pass is not ok, its last_error says the list is incomplete" sh -c "
	[ \"\$($BIN/lienthongctl --socket '$T/ctl.sock' --json status | jq -r '.flows[] | select(.name == \"payment\") | .runs_failed')\" = $((F1 + 1)) ] &&
	$BIN/lienthongctl --socket '$T/ctl.sock' --json status | jq -e '.flows[] | select(.name == \"payment\") |
		.last_error | strings | test(\"$FC $DC: the list is incomplete\")' >/dev/null"
check "... its good rows are stored" wait_until 3 sh -c "
	n=\$(sqlite3 -readonly '$DB' \"SELECT count(*) FROM pay_tx WHERE day = $CC AND source = 'file' AND seen_ms >= $T1\")
	[ \"\$n\" -gt 0 ] && [ \"\$n\" -lt $NC ]"
mm_all "$T/mm.after_cut"
check "... the cut is a payment.malformed_row naming the file and its line" jq -e --arg f "$FC" \
	'any(.[]; .kind == "payment.malformed_row" and .state == "open" and (.summary | contains($f)) and (.summary | test("line [0-9]+")))' "$T/mm.after_cut"
check "... and the day's earlier mismatches stay as they were (the duplicated rows not resolved by a partial list)" \
	jq -e -n --slurpfile a "$T/mm.before_cut" --slurpfile b "$T/mm.after_cut" '
	($a[0] | map({id, kind, key, state})) as $x | ($b[0] | map({id, kind, key, state})) as $y |
	($x | length) > 0 and ($x - $y) == [] and
	([$y[] | select(.kind == "payment.duplicate_row" and .state == "open")] | length) ==
	([$x[] | select(.kind == "payment.duplicate_row" and .state == "open")] | length)'
check "... every class of $DC still as expected (nothing removed on a partial list)" classes_ok "$DC"

# not UTF-8: the simulator's not_utf8 writes every "á" as Latin-1, and
# every row has one ("Thanh toán phí ..."): all rows are bad
sim_post /_sim/payment '{"op":"malformed","kind":"not_utf8"}'
export_day "$DC" csv
sim_post /_sim/payment '{"op":"reset"}'
pass_checked "not_utf8"
mm_all "$T/mm.u8"
check "a file that is not UTF-8: each of its rows is a payment.malformed_row ($NC), naming its line" jq -e \
	--arg f "$FC" "[.[] | select(.kind == \"payment.malformed_row\" and .state == \"open\" and (.summary | contains(\$f)))] |
	length == $NC and all(.[]; .summary | test(\"line [0-9]+ .*not UTF-8\"))" "$T/mm.u8"
check "... the file goes to done/" sh -c "[ -s '$DROP/done/$FC' ] && [ ! -e '$DROP/$FC' ]"
check "... and unreadable rows remove nothing stored: every class of $DC still as expected" classes_ok "$DC"
# one bad row among good ones: the clean export with line 4 (row 3) made Latin-1
export_day "$DC" csv
LC_ALL=C sed -i '4s/\xc3\xa1/\xe1/g' "$DROP/$FC"
jq -r '.items[2].MaHoSo' "$T/page.clean" >"$T/skip.u8"
check "the hand-made file has exactly one line that is not UTF-8" sh -c "
	! iconv -f UTF-8 -t UTF-8 '$DROP/$FC' >/dev/null 2>&1 && sed 4d '$DROP/$FC' | iconv -f UTF-8 -t UTF-8 >/dev/null"
T2=$(now_ms)
pass_checked "one row not UTF-8"
bad_rows malformed_row "$FC" >"$T/g.u8one"
check "one row not UTF-8: that row alone is a payment.malformed_row, naming its line" sh -c "
	[ \$(wc -l <'$T/g.u8one') = 1 ] && jq -e --arg f '$FC' '[.[] | select(.kind == \"payment.malformed_row\" and .state == \"open\" and
		(.summary | contains(\$f)))] | length == 1 and (.[0].summary | test(\"line 4 \"))' '$T/mm.now' >/dev/null"
check "... the other rows are stored ($((NC - 1)))" wait_until 3 stored_is "$CC" "$T2" $((NC - 1))
check "... and every other dossier of $DC keeps its classes" classes_ok "$DC" "$T/skip.u8"

# ---- 8. restart; status while a report is written ---------------------------------------------
mm_all "$T/mm.before_stop"
daemon_stop
check "SIGTERM: the daemon exits 0" [ "$D_RC" = 0 ]
# A large day far from the plan, written into the store while the daemon is
# down (while the dossier flow polls, the daemon holds the store's write lock
# nearly all the time): 60,000 transactions of dossiers the province does
# not have (unknown_dossier), so that their report takes a while to write.
BIG=$(TZ=Asia/Ho_Chi_Minh date -d '200 days ago' +%F)
BIGC=$(compact "$BIG")
BIG_MS=$(($(date -d "$BIG 12:00 +07:00" +%s) * 1000))
check "60,000 transactions of $BIG put into the store" sqlite3 "$DB" "
	WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
	INSERT INTO pay_tx (day, ref, txid, mahoso, amount, state, at_ms, verified, source, seen_ms, raw)
	SELECT $BIGC, printf('H31.99999-${BIGC#20}-%05d-${BIGC}120000', i), printf('${BIGC}%010d', i),
		printf('H31.99999-${BIGC#20}-%05d', i), 150000, 1, $BIG_MS, 1, 'test', 0, NULL FROM n"
rm -f "$T/ctl.sock"
daemon_start "$T/l.conf" || fail "the daemon did not start again"
mm_all "$T/mm.after_start"
check "after a restart every payment mismatch is still there, in the same state" same_mm "$T/mm.before_stop" "$T/mm.after_start"
ctl report payments --from "$BIG" --to "$BIG" >"$T/big.out" 2>&1 &
BIG_PID=$!
: >"$T/during"
while kill -0 "$BIG_PID" 2>/dev/null; do
	if ctl_json status >"$T/st.json" 2>&1; then
		jq -r '.flows[] | select(.name == "payment") | .detail.reports_running' "$T/st.json" >>"$T/during"
	else
		echo failed >>"$T/during"
	fi
	sleep 0.05
done
wait "$BIG_PID"
BIG_RC=$?
check "a report of 60,000 transactions is written (exit 0)" sh -c "[ $BIG_RC = 0 ] && grep -q 'unknown_dossier *60[.]000 ' '$T/big.out'"
check "status answers while that report is being written (reports_running 1)" sh -c "
	! grep -q failed '$T/during' && grep -qx 1 '$T/during'"

# The client gives up while its report is being written: the daemon writes it
# all the same, answers nobody, and serves the next client.
ctl report payments --from "$BIG" --to "$BIG" >/dev/null 2>&1 &
GONE_PID=$!
sleep 0.2
kill "$GONE_PID" 2>/dev/null
wait "$GONE_PID" 2>/dev/null
check "a client gone while its report is written: the report is still written" \
	wait_until 30 sh -c "[ \$(grep -c 'report written: $BIG' '$T/daemon.log') -ge 2 ]"
check "... and the daemon answers the next client" ctl status
rm -f "$REP/doi-soat-thanh-toan_${BIGC}_${BIGC}".* # 40 MB not worth keeping for inspection

finish
