#!/bin/sh
# System test of lienthong-sim's payments (notes/payment-spec.md §1-§4): the
# platform under /paygov (the day's list, paged; QUERY for a success, a
# pending, a failed and an unknown transaction, a request with a bad
# MaXacThuc, a request of another partner; the Bearer token), the provincial
# fee records, the seeded discrepancies (every class of §4 in
# /_sim/payment/expected with the promised count, and what the list, the fee
# records and the dossier change feed serve agrees with each class), the
# signatures (recomputed here with sha256sum, independently of the C code),
# the exported files (CSV and JSON), the bad-input faults, /_sim/faults on the
# new routes, determinism per --seed, and that the feed of dossiers without a
# payment fault is what it was without the payment faults.
#
# Usage: BUILD=build sh tests/system/test_sim_payment.sh   (needs curl, jq, sha256sum, iconv)
. "$(dirname "$0")/lib.sh"

no_proxy=127.0.0.1,localhost
NO_PROXY=$no_proxy
export no_proxy NO_PROXY

NOW=2025-11-20T10:00:00+07:00
OLD14=20251117100000 # NOW less 3 days: pending_too_long attempts are older
DAY=2025-11-19	     # a full day of the window
PG=paygov-secret-token
PK=paygov-partner-key
PT=provincial-secret-token
TAB=$(printf '\t')
EXTRA_PIDS=""
trap 'for p in $EXTRA_PIDS; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; cleanup' EXIT

# pg URL QUERY [TOKEN]: GET the platform's list; body in $T/body, prints the status.
pg() {
	curl -s -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer ${3-$PG}" \
		"$1/paygov/api/v1/giao-dich$2"
}
# pf URL QUERY [TOKEN]: GET the provincial fee records; the same.
pf() {
	curl -s -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer ${3-$PT}" \
		"$1/provincial/api/v1/le-phi$2"
}
# fetch_day URL pg|pf DAY LIMIT OUT: every item of the day, one a line, following
# next_cursor until has_more is false; fails on a page that is not 200 or whose
# next_cursor is not the cursor plus its items.
fetch_day() {
	: >"$5"
	c=""
	i=0
	while [ "$i" -lt 10000 ]; do
		[ "$($2 "$1" "?ngay=$3&limit=$4&cursor=$c")" = 200 ] || return 1
		# one parse of the page: its items, then "next more count"
		jq -r '(.items[] | tojson), "\(.next_cursor) \(.has_more) \(.items | length)"' \
			"$T/body" >"$T/part" || return 1
		# shellcheck disable=SC2046 # the meta line split into $6 $7 $8 on purpose
		set -- "$1" "$2" "$3" "$4" "$5" $(tail -n 1 "$T/part")
		[ "$6" = $((${c:-0} + $8)) ] || return 1
		sed '$d' "$T/part" >>"$5"
		c=$6
		[ "$7" = true ] || return 0
		i=$((i + 1))
	done
	return 1
}
# fetch_days URL PREFIX: the list and the fee records of every day with records,
# one page of each a day, as served (a page a line) into PREFIX.lraw and
# PREFIX.fraw, their items one a line into PREFIX.list and PREFIX.fees.
fetch_days() {
	: >"$2.lraw"
	: >"$2.fraw"
	curl -s "$1/_sim/payment/stats" | jq -r '.days | keys[]' >"$2.days" || return 1
	[ -s "$2.days" ] || return 1
	while read -r d; do
		curl -sf -H "Authorization: Bearer $PG" "$1/paygov/api/v1/giao-dich?ngay=$d&limit=5000" \
			>>"$2.lraw" && echo >>"$2.lraw" &&
			curl -sf -H "Authorization: Bearer $PT" \
				"$1/provincial/api/v1/le-phi?ngay=$d&limit=5000" >>"$2.fraw" &&
			echo >>"$2.fraw" || return 1
	done <"$2.days"
	jq -e -s 'all(.[]; .has_more == false)' "$2.lraw" "$2.fraw" >/dev/null &&
		jq -c '.items[]' "$2.lraw" >"$2.list" && jq -c '.items[]' "$2.fraw" >"$2.fees"
}
# sigs FILE: for each message (a list item or a QUERY answer, one a line),
# "ok REF" when its MaXacThuc is the SHA-256 of its 11 signed fields and the
# key, else "bad REF".
sigs() {
	jq -r '(. as $t | [$t.LoaiBanTin, $t.MaLoi, $t.MaDoiTac, $t.MaThamChieu, $t.SoTien,
		$t.MaTienTe, $t.MaGiaoDich, $t.MaNganHang, $t.ThoiGianGD, $t.ThongTinGiaoDich,
		$t.TrangThaiGD] | map(if . == null then "" else tostring end) | join("|")) +
		"\t" + (.MaThamChieu // "-") + "\t" + (.MaXacThuc // "")' "$1" |
		while IFS="$TAB" read -r txt ref mac; do
			h=$(printf '%s|%s' "$txt" "$PK" | sha256sum | cut -c1-64)
			if [ "$h" = "$mac" ]; then echo "ok $ref"; else echo "bad $ref"; fi
		done
}
# query URL REF [PARTNER] [bad]: a signed QUERY (wrongly signed with "bad"); the
# answer in $T/ans, prints the status.
query() {
	_tg=20251120120000
	_mac=$(printf 'QUERY|1.0.6|%s|%s|%s|%s' "${3:-HUNGYEN}" "$2" "$_tg" "$PK" | sha256sum | cut -c1-64)
	[ "${4:-}" = bad ] && _mac=$(printf 'x%s' "$_mac" | sha256sum | cut -c1-64)
	printf '{"LoaiBanTin":"QUERY","PhienBan":"1.0.6","MaDoiTac":"%s","MaThamChieu":"%s","ThoiGianGD":"%s","MaXacThuc":"%s"}' \
		"${3:-HUNGYEN}" "$2" "$_tg" "$_mac" >"$T/qreq"
	curl -s -o "$T/ans" -w '%{http_code}' -H "Authorization: Bearer $PG" \
		--data-binary @"$T/qreq" "$1/paygov/api/v1/query"
}
# csv_fields FILE: the lines of a CSV file (BOM and CR dropped, no line breaks
# inside fields) with their fields unquoted and separated by tabs.
csv_fields() {
	sed '1s/^\xEF\xBB\xBF//; s/\r$//' "$1" | awk '{
		out = ""; q = 0
		for (i = 1; i <= length($0); i++) {
			c = substr($0, i, 1)
			if (q) {
				if (c == "\"") {
					if (substr($0, i + 1, 1) == "\"") { out = out c; i++ } else q = 0
				} else out = out c
			} else if (c == "\"") q = 1
			else if (c == ",") out = out "\t"
			else out = out c
		}
		print out
	}'
}
jqf() { [ -s "$1" ] && jq -e "$2" "$1" >/dev/null; }
# jqd EXPR: EXPR holds over $l (list items), $f (fee records), $h (feed
# changes, projected), $x (expected, every day), $s (signature results).
jqd() {
	jq -e -n --slurpfile l "$T/a.list" --slurpfile f "$T/a.fees" --slurpfile h "$T/feed" \
		--slurpfile xs "$T/exp" --slurpfile s "$T/sigs.json" \
		"\$xs[0] as \$x | INDEX(\$l[]; .MaThamChieu) as \$L |
		 INDEX(\$f[] | select(.maThamChieu != null); .maThamChieu) as \$F |
		 INDEX(\$h[]; .m) as \$H | $1" >/dev/null
}
post() { curl -s -o "$T/ans" -w '%{http_code}' -X POST -d "$2" "$1"; }
stop_sim() {
	kill -TERM "$1" && wait "$1" && ! grep -q -e 'Sanitizer' -e 'runtime error' "$T/sim.log"
}

[ -x "$BIN/lienthong-sim" ] || { fail "$BIN/lienthong-sim not built"; finish; exit 1; }

# ---- four simulators: A and B alike, C another seed, D without payment faults ---------
sim_start --dossier-now "$NOW" || { fail "simulator A did not start"; finish; exit 1; }
A=$SIM_URL
A_PID=$SIM_PID
sim_start --dossier-now "$NOW" || { fail "simulator B did not start"; finish; exit 1; }
B=$SIM_URL
B_PID=$SIM_PID
sim_start --dossier-now "$NOW" --seed 8 || { fail "simulator C did not start"; finish; exit 1; }
C=$SIM_URL
C_PID=$SIM_PID
sim_start --dossier-now "$NOW" --payment-faults 0 || { fail "simulator D did not start"; finish; exit 1; }
D=$SIM_URL
D_PID=$SIM_PID
EXTRA_PIDS="$A_PID $B_PID $C_PID $D_PID"
SIM_PID=""

curl -s "$A/_sim/payment/stats" >"$T/stats"
Q=$(jq -r '.quota // 0' "$T/stats")
check "stats: --payment-faults 10 per 1,000 dossiers of 1,000: 10 of each class" jqf "$T/stats" \
	'.quota == 10 and .faults_per_1000 == 10 and .dossiers_with_fees > 300 and
	 .transactions > 100 and .fee_records > 300 and .query_requests == 0 and .list_pages == 0'

# ---- what is served ---------------------------------------------------------------------------
fetch_days "$A" "$T/a" || fail "reading simulator A's lists and fee records"
curl -s "$A/_sim/payment/expected" >"$T/exp"
SIM_URL=$A
feed_fetch "$T/feed" '{m: .maHoSo, t: .hoSo.thanhToanTrucTuyen, n: (.hoSo.lePhi | length),
	s: ([.hoSo.lePhi[].gia] | add)}' || fail "reading simulator A's change feed"
sigs "$T/a.list" >"$T/sigs"
jq -R 'split(" ") | {(.[1]): .[0]}' "$T/sigs" | jq -s 'add // {}' >"$T/sigs.json"

check "expected: every class, $Q of each discrepancy, the rest matched" jqf "$T/exp" \
	".ngay == null and (.classes | keys) == ([\"matched\",\"platform_only\",\"local_only\",
		\"amount_differs\",\"paid_twice\",\"pending_too_long\",\"bad_signature\",
		\"portal_without_fee\",\"unknown_dossier\"] | sort) and
	 all(.classes | to_entries[] | select(.key != \"matched\"); (.value | length) == $Q) and
	 (.classes.matched | length) > 50 and .counts == (.classes | map_values(length))"
check "the list: MaThamChieu unique, maHoSo-yyyyMMddHHmmss of ThoiGianGD, amounts integers" jqd '
	([$l[].MaThamChieu] | length) == ([$l[].MaThamChieu] | unique | length) and
	all($l[]; .MaThamChieu == .MaHoSo + "-" + .ThoiGianGD and (.SoTien | type) == "number" and
		.LoaiBanTin == "CONFIRM" and .MaLoi == "00" and .MaDoiTac == "HUNGYEN" and
		.MaTienTe == "704" and ([.TrangThaiGD] | inside([1,3,4])) and
		(.ThoiGianCapNhat >= .ThoiGianGD) and (.ThoiGianGD | test("^[0-9]{14}$")))'
check "every list item and fee record is keyed in exactly one class (or is a desk payment)" jqd '
	[$x.classes | to_entries[] | select(.key != "portal_without_fee") | .value[]] as $all |
	INDEX($all[]; .) as $S |
	($all | length) == ($all | unique | length) and
	all($l[]; $S[.MaThamChieu] != null) and
	all($f[] | select(.maThamChieu != null); $S[.maThamChieu] != null)'
check "matched: a success on the list, DA_THANH_TOAN TRUC_TUYEN of the same amount locally" jqd '
	all($x.classes.matched[]; $L[.] as $t | $F[.] as $r | $t != null and $r != null and
		$t.TrangThaiGD == 1 and $r.trangThai == "DA_THANH_TOAN" and
		$r.hinhThuc == "TRUC_TUYEN" and $r.soTien == $t.SoTien and $r.maHoSo == $t.MaHoSo and
		$s[0][.] == "ok")'
check "matched: the feed shows the dossier paid online, its fee lines summing to SoTien" jqd '
	INDEX($x.classes.portal_without_fee[]; .) as $P |
	all($x.classes.matched[] | $L[.] | select($P[.MaHoSo] == null);
		$H[.MaHoSo] as $d | $d != null and ([$d.t] | inside([1,2])) and $d.s == .SoTien)'
check "platform_only: a success on the list, CHUA_THANH_TOAN locally or (half) no record" jqd "
	[\$x.classes.platform_only[] | \$L[.] as \$t | \$F[.] as \$r |
		if \$t == null or \$t.TrangThaiGD != 1 or \$H[\$t.MaHoSo] == null then \"wrong\"
		elif \$r == null then
			(if ([\$f[] | select(.maHoSo == \$t.MaHoSo)] | length) == 0 then \"absent\"
			 else \"wrong\" end)
		elif \$r.trangThai == \"CHUA_THANH_TOAN\" then \"unpaid\" else \"wrong\" end] |
	(map(select(. == \"unpaid\")) | length) == ($Q + 1) / 2 - (($Q + 1) % 2) / 2 and
	(map(select(. == \"absent\")) | length) == $Q / 2 - ($Q % 2) / 2"
check "local_only: DA_THANH_TOAN TRUC_TUYEN locally; on the list nothing or (half) TrangThaiGD 4" jqd '
	[$x.classes.local_only[] | $F[.] as $r | $L[.] as $t |
		if $r == null or $r.trangThai != "DA_THANH_TOAN" or $r.hinhThuc != "TRUC_TUYEN" then "wrong"
		elif $t == null then "none" elif $t.TrangThaiGD == 4 then "failed" else "wrong" end] |
	(index(["wrong"]) == null) and (index(["none"]) != null) and (index(["failed"]) != null)'
check "amount_differs: both paid, amounts differing by 1,000 .. 50,000 (whole thousands)" jqd '
	all($x.classes.amount_differs[]; $L[.] as $t | $F[.] as $r | $t != null and $r != null and
		($t.SoTien - $r.soTien) as $d | (if $d < 0 then -$d else $d end) as $a |
		$t.TrangThaiGD == 1 and $r.trangThai == "DA_THANH_TOAN" and $a >= 1000 and
		$a <= 50000 and $a % 1000 == 0)'
check "paid_twice: a second success for a dossier whose first payment is recorded" jqd '
	all($x.classes.paid_twice[]; $L[.] as $t | $t != null and $t.TrangThaiGD == 1 and
		$F[.] == null and
		([$l[] | select(.MaHoSo == $t.MaHoSo and .MaThamChieu != $t.MaThamChieu and
			.TrangThaiGD == 1 and $F[.MaThamChieu].trangThai == "DA_THANH_TOAN")] |
		 length) == 1)'
check "pending_too_long: TrangThaiGD 3, CHO_XAC_NHAN locally, at least 3 days old" jqd "
	all(\$x.classes.pending_too_long[]; \$L[.] as \$t | \$F[.] as \$r | \$t != null and
		\$r != null and \$t.TrangThaiGD == 3 and \$r.trangThai == \"CHO_XAC_NHAN\" and
		\$t.ThoiGianGD <= \"$OLD14\")"
check "bad_signature: exactly those list items fail the SHA-256 check (computed here)" jqd '
	INDEX($x.classes.bad_signature[]; .) as $B |
	all($l[]; ($s[0][.MaThamChieu] == "bad") == ($B[.MaThamChieu] != null)) and
	all($x.classes.bad_signature[]; $F[.].trangThai == "DA_THANH_TOAN") and
	any($l[]; $B[.MaThamChieu] != null and has("MaXacThuc") | not) and
	any($l[]; $B[.MaThamChieu] != null and (.MaXacThuc // "" | test("^[0-9A-F]{64}$")))'
check "unknown_dossier: a success naming no dossier of the feed and no fee record" jqd '
	all($x.classes.unknown_dossier[]; $L[.] as $t | $t != null and $t.TrangThaiGD == 1 and
		$H[$t.MaHoSo] == null and ([$f[] | select(.maHoSo == $t.MaHoSo)] | length) == 0)'
check "portal_without_fee: paid online, the feed shows thanhToanTrucTuyen 0 or lePhi [] (both kinds)" jqd '
	all($x.classes.portal_without_fee[]; . as $m | [$h[] | select(.m == $m)] as $c |
		($c | length) > 0 and all($c[]; .t == 0 or .n == 0) and
		any($x.classes.matched[]; $L[.].MaHoSo == $m)) and
	any($x.classes.portal_without_fee[]; $H[.].t == 0) and
	any($x.classes.portal_without_fee[]; $H[.].n == 0)'
check "desk payments: maThamChieu null, TIEN_MAT or CHUYEN_KHOAN, no platform transaction" jqd '
	INDEX($l[]; .MaHoSo) as $M |
	[$f[] | select(.maThamChieu == null)] as $d | ($d | length) > 100 and
	all($d[]; .trangThai == "DA_THANH_TOAN" and ([.hinhThuc] | inside(["TIEN_MAT","CHUYEN_KHOAN"])) and
		$M[.maHoSo] == null) and
	all($f[] | select(.maThamChieu != null); .hinhThuc == "TRUC_TUYEN")'
check "fee records: times ISO 8601 +07:00 on the day of the payment" jqd '
	all($f[]; (.thoiGian | test("^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]\\+07:00$")) and
		(.soTien | type) == "number" and
		(if .maThamChieu then .maThamChieu[-14:-6] == (.thoiGian[0:4] + .thoiGian[5:7] + .thoiGian[8:10])
		 else true end))'

# one day: the expected classes of the day are those of every day with its refs
curl -s "$A/_sim/payment/expected?ngay=$DAY" >"$T/exp.day"
D8=$(echo "$DAY" | tr -d -)
check "expected?ngay=$DAY: the classes of every day restricted to that day" jq -e -n \
	--slurpfile a "$T/exp" --slurpfile d "$T/exp.day" --slurpfile l "$T/a.list" "
	INDEX(\$l[]; .MaThamChieu) as \$L | \$d[0].ngay == \"$DAY\" and
	all(\$a[0].classes | to_entries[];
		.key as \$k | (.value | map(select(
			if \$k == \"portal_without_fee\" then .[-12:-6] == \"${D8#20}\"
			else .[-14:-6] == \"$D8\" end)) | sort) == (\$d[0].classes[\$k] | sort)) and
	(\$d[0].classes.matched | length) > 10"
check "expected?ngay=bad: 400" [ "$(curl -s -o /dev/null -w '%{http_code}' "$A/_sim/payment/expected?ngay=2025-13-01")" = 400 ]

# ---- paging and tokens ----------------------------------------------------------------------------
grep "\"ThoiGianGD\":\"$D8" "$T/a.list" >"$T/day.list"
ND=$(wc -l <"$T/day.list")
fetch_day "$A" pg "$DAY" 7 "$T/day7" && cmp -s "$T/day7" "$T/day.list" &&
	pass "the day by pages of 7: the same items as in one page, in order" ||
	fail "the day by pages of 7: the same items as in one page, in order"
pg "$A" "?ngay=$DAY&limit=3" >/dev/null
check "no cursor: from the beginning, next_cursor 3" jqf "$T/body" \
	'(.items | length) == 3 and .next_cursor == "3" and .has_more == true'
pg "$A" "?ngay=$DAY&limit=3&cursor=" >/dev/null
check "an empty cursor: from the beginning" jqf "$T/body" '.next_cursor == "3"'
pg "$A" "?ngay=$DAY&cursor=$ND" >/dev/null
check "cursor at the end: items [], has_more false, next_cursor unchanged" jqf "$T/body" \
	".items == [] and .has_more == false and .next_cursor == \"$ND\""
pg "$A" "?ngay=$DAY&cursor=99999999" >/dev/null
check "cursor beyond the end: items []" jqf "$T/body" '.items == [] and .has_more == false'
pg "$A" "?ngay=2020-01-01" >/dev/null
check "a day without transactions: items [], next_cursor 0" jqf "$T/body" \
	'.items == [] and .has_more == false and .next_cursor == "0"'
for bad in "cursor=abc" "cursor=-1" "cursor=1.5" "cursor=12345678901234567890" "limit=0" \
	"limit=5001" "limit=x"; do
	check "$bad: 400" [ "$(pg "$A" "?ngay=$DAY&$bad")" = 400 ]
done
for bad in "" "?ngay=2025-02-30" "?ngay=20251119" "?ngay=2025-11-1"; do
	check "ngay '${bad#?ngay=}': 400" [ "$(pg "$A" "$bad")" = 400 ]
done
check "limit 5000 is accepted" [ "$(pg "$A" "?ngay=$DAY&limit=5000")" = 200 ]
check "the list without Authorization: 401" [ "$(curl -s -o /dev/null -w '%{http_code}' \
	"$A/paygov/api/v1/giao-dich?ngay=$DAY")" = 401 ]
check "the list with an empty token: 401" [ "$(pg "$A" "?ngay=$DAY" "")" = 401 ]
check "the list with a wrong token: 401" [ "$(pg "$A" "?ngay=$DAY" wrong)" = 401 ]
check "the list with the provincial token: 401" [ "$(pg "$A" "?ngay=$DAY" "$PT")" = 401 ]
check "the fee records with the platform's token: 401" [ "$(pf "$A" "?ngay=$DAY" "$PG")" = 401 ]
check "QUERY without a token: 401" [ "$(curl -s -o /dev/null -w '%{http_code}' -d '{}' \
	"$A/paygov/api/v1/query")" = 401 ]
grep "\"thoiGian\":\"$DAY" "$T/a.fees" >"$T/day.fees"
fetch_day "$A" pf "$DAY" 50 "$T/dayf50" && cmp -s "$T/dayf50" "$T/day.fees" &&
	pass "fee records by pages of 50: the same items as in one page" ||
	fail "fee records by pages of 50: the same items as in one page"
check "fee records: bad limit 400" [ "$(pf "$A" "?ngay=$DAY&limit=0")" = 400 ]

# ---- QUERY ------------------------------------------------------------------------------------------
R_OK=$(jq -r '.classes.matched[0]' "$T/exp")
R_PEND=$(jq -r '.classes.pending_too_long[0]' "$T/exp")
R_FAIL=$(jq -r -n --slurpfile x "$T/exp" --slurpfile l "$T/a.list" '
	INDEX($l[]; .MaThamChieu) as $L | [$x[0].classes.local_only[] | select($L[.] != null)][0]')
R_BAD=$(jq -r -n --slurpfile x "$T/exp" --slurpfile l "$T/a.list" '
	INDEX($l[]; .MaThamChieu) as $L | [$x[0].classes.bad_signature[] | select($L[.].MaXacThuc)][0]')
: >"$T/answers"
query "$A" "$R_OK" >/dev/null
cp "$T/ans" "$T/q.ok"
jq -c . "$T/ans" >>"$T/answers"
check "QUERY of a success: MaLoi 00, TrangThaiGD 1, the transaction as listed" jq -e -n \
	--slurpfile a "$T/q.ok" --slurpfile l "$T/a.list" "
	(\$l | map(select(.MaThamChieu == \"$R_OK\"))[0]) as \$t | \$a[0] as \$q |
	\$q.LoaiBanTin == \"QUERY\" and \$q.MaLoi == \"00\" and \$q.TrangThaiGD == 1 and
	\$q.MaThamChieu == \$t.MaThamChieu and \$q.SoTien == \$t.SoTien and
	\$q.MaGiaoDich == \$t.MaGiaoDich and \$q.MaNganHang == \$t.MaNganHang and
	\$q.ThoiGianGD == \$t.ThoiGianGD and \$q.ThongTinGiaoDich == \$t.ThongTinGiaoDich and
	\$q.MaTienTe == \"704\" and \$q.MaDoiTac == \"HUNGYEN\" and (\$q | has(\"MaHoSo\") | not)"
query "$A" "$R_PEND" >/dev/null
jq -c . "$T/ans" >>"$T/answers"
check "QUERY of a pending transaction: TrangThaiGD 3" jqf "$T/ans" \
	".MaLoi == \"00\" and .TrangThaiGD == 3 and .MaThamChieu == \"$R_PEND\""
query "$A" "$R_FAIL" >/dev/null
jq -c . "$T/ans" >>"$T/answers"
check "QUERY of a failed transaction: TrangThaiGD 4" jqf "$T/ans" \
	".MaLoi == \"00\" and .TrangThaiGD == 4 and .MaThamChieu == \"$R_FAIL\""
query "$A" "H31.11953-251120-00001-20251120083000" >/dev/null
jq -c . "$T/ans" >>"$T/answers"
check "QUERY of an unknown MaThamChieu: MaLoi 01, TrangThaiGD 4, no transaction" jqf "$T/ans" \
	'.MaLoi == "01" and .TrangThaiGD == 4 and (has("SoTien") or has("MaGiaoDich") | not)'
query "$A" "$R_OK" HUNGYEN bad >/dev/null
jq -c . "$T/ans" >>"$T/answers"
check "QUERY with a wrong MaXacThuc: 200, MaLoi 07, no transaction fields" jqf "$T/ans" \
	"[.LoaiBanTin, .MaLoi, .MaThamChieu] == [\"QUERY\", \"07\", \"$R_OK\"] and
	 (has(\"SoTien\") or has(\"TrangThaiGD\") or has(\"MaGiaoDich\") or has(\"ThoiGianGD\") | not)"
query "$A" "$R_OK" HANOI >/dev/null
jq -c . "$T/ans" >>"$T/answers"
check "QUERY of another partner, rightly signed: MaLoi 02, no transaction fields" jqf "$T/ans" \
	'.MaLoi == "02" and (has("SoTien") | not)'
sigs "$T/answers" >"$T/qsigs"
check "every QUERY answer is signed (SHA-256 computed here)" sh -c "
	[ \$(grep -c '^ok ' '$T/qsigs') = 6 ] && [ \$(wc -l <'$T/qsigs') = 6 ]"
query "$A" "$R_BAD" >/dev/null
jq -c . "$T/ans" >"$T/q.bad"
sigs "$T/q.bad" >"$T/q.bad.sig"
check "QUERY of a bad_signature transaction: its answer does not verify either" sh -c "
	jq -e '.TrangThaiGD == 1' '$T/q.bad' >/dev/null && grep -q '^bad ' '$T/q.bad.sig'"
check "QUERY with a body that is not JSON: 400" [ "$(curl -s -o /dev/null -w '%{http_code}' \
	-H "Authorization: Bearer $PG" -d 'nope' "$A/paygov/api/v1/query")" = 400 ]
check "QUERY with an integer field: its decimal text is what is signed" sh -c "
	m=\$(printf 'QUERY|1.0.6|HUNGYEN|$R_OK|20251120120000|$PK' | sha256sum | cut -c1-64)
	curl -s -H 'Authorization: Bearer $PG' -d '{\"LoaiBanTin\":\"QUERY\",\"PhienBan\":\"1.0.6\",\"MaDoiTac\":\"HUNGYEN\",\"MaThamChieu\":\"$R_OK\",\"ThoiGianGD\":20251120120000,\"MaXacThuc\":\"'\$m'\"}' \
		'$A/paygov/api/v1/query' | jq -e '.MaLoi == \"00\"' >/dev/null"
curl -s "$A/_sim/payment/stats" >"$T/stats"
check "stats: QUERY requests by outcome, list and fee pages served" jqf "$T/stats" \
	'.query_requests == 8 and .query_answers == {"success":2,"pending":1,"failed":1,"unknown":1,
		"bad_signature":2,"bad_request":1} and .list_pages > 40 and .fee_pages > 40 and
	 .list_items > 100'

# ---- files ----------------------------------------------------------------------------------------------
mkdir -p "$T/drop"
post "$A/_sim/payment/export" "{\"ngay\":\"$DAY\",\"format\":\"csv\",\"dir\":\"$T/drop\"}" >/dev/null
check "export csv: written, as many rows as the day's transactions" jqf "$T/ans" \
	".ok == true and .path == \"$T/drop/giao-dich-$D8.csv\" and .items == $ND and .rows == $ND"
F=$T/drop/giao-dich-$D8.csv
check "csv: a UTF-8 BOM, then the header: the fields of TX in order, MaXacThuc last" sh -c "
	[ \"\$(head -c 3 '$F' | od -An -tx1 | tr -d ' ')\" = efbbbf ] &&
	[ \"\$(head -n 1 '$F' | sed '1s/^\xEF\xBB\xBF//' | tr -d '\r')\" = \
'LoaiBanTin,MaLoi,MaDoiTac,MaThamChieu,SoTien,MaTienTe,MaGiaoDich,MaNganHang,ThoiGianGD,ThongTinGiaoDich,TrangThaiGD,MaHoSo,ThoiGianCapNhat,MaXacThuc' ]"
csv_fields "$F" >"$T/csv.tsv"
check "csv: CRLF line ends, 14 fields on every line, 1 + $ND lines" sh -c "
	[ \$(grep -c \"\$(printf '\r')\$\" '$F') = $((ND + 1)) ] &&
	awk -F '\t' 'NF != 14 { exit 1 }' '$T/csv.tsv' && [ \$(wc -l <'$T/csv.tsv') = $((ND + 1)) ]"
jq -r '[.LoaiBanTin, .MaLoi, .MaDoiTac, .MaThamChieu, .SoTien, .MaTienTe, .MaGiaoDich,
	.MaNganHang, .ThoiGianGD, .ThongTinGiaoDich, .TrangThaiGD, .MaHoSo, .ThoiGianCapNhat,
	(.MaXacThuc // "")] | map(tostring) | join("\t")' "$T/day.list" >"$T/list.tsv"
check "csv: the rows are the day's list items, field for field (quoted commas read back)" sh -c "
	sed 1d '$T/csv.tsv' | cmp -s - '$T/list.tsv' && grep -q '\"Thanh toán phí, lệ phí' '$F'"
post "$A/_sim/payment/export" "{\"ngay\":\"$DAY\",\"format\":\"json\",\"dir\":\"$T/drop/\"}" >/dev/null
check "export json: {ngay, items} holding the day's list items" sh -c "
	jq -e '.ngay == \"$DAY\" and (.items | length) == $ND' '$T/drop/giao-dich-$D8.json' >/dev/null &&
	jq -c '.items[]' '$T/drop/giao-dich-$D8.json' | cmp -s - '$T/day.list'"
check "export: a directory that does not exist, a relative one, a bad format: 400" sh -c "
	[ \"\$(curl -s -o /dev/null -w '%{http_code}' -d '{\"ngay\":\"$DAY\",\"format\":\"csv\",\"dir\":\"$T/none\"}' '$A/_sim/payment/export')\" = 400 ] &&
	[ \"\$(curl -s -o /dev/null -w '%{http_code}' -d '{\"ngay\":\"$DAY\",\"format\":\"csv\",\"dir\":\"drop\"}' '$A/_sim/payment/export')\" = 400 ] &&
	[ \"\$(curl -s -o /dev/null -w '%{http_code}' -d '{\"ngay\":\"$DAY\",\"format\":\"xml\",\"dir\":\"$T/drop\"}' '$A/_sim/payment/export')\" = 400 ]"

# ---- determinism, and the feed without payment faults ------------------------------------------------
fetch_days "$B" "$T/b" || fail "reading simulator B"
fetch_days "$C" "$T/c" || fail "reading simulator C"
check "same seed: identical lists and fee records, byte for byte" sh -c "
	cmp -s '$T/a.lraw' '$T/b.lraw' && cmp -s '$T/a.fraw' '$T/b.fraw'"
check "same seed: identical expected" sh -c "curl -s '$B/_sim/payment/expected' | cmp -s - '$T/exp'"
check "another seed: another list" sh -c "[ -s '$T/c.lraw' ] && ! cmp -s '$T/a.lraw' '$T/c.lraw'"
curl -s "$D/_sim/payment/expected" >"$T/exp0"
check "--payment-faults 0: everything matched, no discrepancy" jqf "$T/exp0" \
	'.counts.matched > 100 and all(.counts | to_entries[] | select(.key != "matched"); .value == 0)'
SIM_URL=$A
feed_fetch "$T/feedA" '.' || fail "reading A's feed"
SIM_URL=$D
feed_fetch "$T/feedD" '.' || fail "reading D's feed"
jq -r '.classes.portal_without_fee[] | "\"maHoSo\":\"" + . + "\""' "$T/exp" >"$T/pwf.pat"
check "the feed of every dossier without a payment fault is the same as without payment faults" sh -c "
	[ -s '$T/pwf.pat' ] && grep -v -F -f '$T/pwf.pat' '$T/feedA' >'$T/fa' &&
	grep -v -F -f '$T/pwf.pat' '$T/feedD' >'$T/fd' && [ -s '$T/fa' ] && cmp -s '$T/fa' '$T/fd' &&
	[ \$(wc -l <'$T/feedA') = \$(wc -l <'$T/feedD') ]"
grep -F -f "$T/pwf.pat" "$T/feedA" >"$T/pwfA"
grep -F -f "$T/pwf.pat" "$T/feedD" >"$T/pwfD"
check "... and portal_without_fee dossiers differ, only in thanhToanTrucTuyen and lePhi" sh -c "
	[ -s '$T/pwfA' ] && ! cmp -s '$T/pwfA' '$T/pwfD' &&
	jq -c 'del(.hoSo.thanhToanTrucTuyen, .hoSo.lePhi)' '$T/pwfA' >'$T/pa' &&
	jq -c 'del(.hoSo.thanhToanTrucTuyen, .hoSo.lePhi)' '$T/pwfD' >'$T/pd' && cmp -s '$T/pa' '$T/pd'"

# ---- bad inputs ---------------------------------------------------------------------------------------------
post "$A/_sim/payment" '{"op":"malformed","kind":"amount_text","every":2}' >/dev/null
check "malformed amount_text every 2: answered with the state" jqf "$T/ans" \
	'.ok == true and .malformed.amount_text == 2 and .malformed.duplicate_row == 0'
pg "$A" "?ngay=$DAY&limit=5000" >/dev/null
jq -c '.items[]' "$T/body" >"$T/mal.list"
check "amount_text: every other SoTien as text with dots (\"150.000\"), the same amount" jq -e -n \
	--slurpfile m "$T/mal.list" --slurpfile o "$T/day.list" '
	($m | length) == ($o | length) and
	all(range(0; $m | length); . as $i | $m[$i].SoTien as $v |
		if $i % 2 == 0 then ($v | type) == "string" and ($v | test("^[0-9]{1,3}(\\.[0-9]{3})+$")) and
			($v | gsub("\\."; "") | tonumber) == $o[$i].SoTien
		else $v == $o[$i].SoTien end)'
sigs "$T/mal.list" >"$T/mal.sigs"
grep "^bad .*-$D8" "$T/sigs" | sort >"$T/bad.day"
check "amount_text: signed over the text served (only the bad_signature items fail)" sh -c "
	[ -s '$T/mal.sigs' ] && grep '^bad ' '$T/mal.sigs' | sort | cmp -s - '$T/bad.day'"
post "$A/_sim/payment" '{"op":"malformed","kind":"amount_text","on":false}' >/dev/null
post "$A/_sim/payment" '{"op":"malformed","kind":"duplicate_row","every":3}' >/dev/null
pg "$A" "?ngay=$DAY&limit=5000" >/dev/null
check "duplicate_row every 3: rows 0, 3, 6... twice in a row, nothing else changed" jq -e -n \
	--slurpfile p "$T/body" --slurpfile o "$T/day.list" '
	$p[0].items as $m | ($m | length) == ($o | length) + (($o | length) + 2) / 3 - ((($o | length) + 2) % 3) / 3 and
	$m[0] == $m[1] and $m[1] != $m[2] and ($m | unique | length) == ($o | length) and
	($m | unique) == ($o | unique)'
post "$A/_sim/payment/export" "{\"ngay\":\"$DAY\",\"format\":\"csv\",\"dir\":\"$T/drop\"}" >/dev/null
check "duplicate_row: the file has the duplicated rows too" jqf "$T/ans" \
	".rows > .items and .items == $ND"
post "$A/_sim/payment" '{"op":"malformed","kind":"duplicate_row","on":false}' >/dev/null
post "$A/_sim/payment" '{"op":"malformed","kind":"truncated"}' >/dev/null
st=$(pg "$A" "?ngay=$DAY&limit=5000")
check "truncated: the page is 200 but its JSON is cut" sh -c "
	[ $st = 200 ] && [ -s '$T/body' ] && ! jq . '$T/body' >/dev/null 2>&1"
post "$A/_sim/payment/export" "{\"ngay\":\"$DAY\",\"format\":\"json\",\"dir\":\"$T/drop\"}" >/dev/null
check "truncated: the file is cut (not JSON, about half its size)" sh -c "
	! jq . '$T/drop/giao-dich-$D8.json' >/dev/null 2>&1 &&
	[ \$(wc -c <'$T/drop/giao-dich-$D8.json') -gt 100 ]"
post "$A/_sim/payment" '{"op":"malformed","kind":"truncated","on":false}' >/dev/null
post "$A/_sim/payment" '{"op":"malformed","kind":"not_utf8"}' >/dev/null
post "$A/_sim/payment/export" "{\"ngay\":\"$DAY\",\"format\":\"csv\",\"dir\":\"$T/drop\"}" >/dev/null
check "not_utf8: the file is not UTF-8 (Latin-1 'á')" sh -c "
	! iconv -f UTF-8 -t UTF-8 '$F' >/dev/null 2>&1 && LC_ALL=C grep -q 'Thanh to$(printf '\341')n' '$F'"
check "not_utf8: the pages stay UTF-8" sh -c "
	[ \$(curl -s -o '$T/u8' -w '%{http_code}' -H 'Authorization: Bearer $PG' '$A/paygov/api/v1/giao-dich?ngay=$DAY') = 200 ] &&
	iconv -f UTF-8 -t UTF-8 '$T/u8' >/dev/null"
post "$A/_sim/payment" '{"op":"malformed","kind":"query_pending"}' >/dev/null
query "$A" "$R_OK" >/dev/null
check "query_pending: a success answers pending (TrangThaiGD 3)" jqf "$T/ans" \
	'.MaLoi == "00" and .TrangThaiGD == 3'
post "$A/_sim/payment" '{"op":"reset"}' >/dev/null
check "reset: every bad input off" jqf "$T/ans" 'all(.malformed[]; . == 0)'
query "$A" "$R_OK" >/dev/null
check "after reset: the success again" jqf "$T/ans" '.TrangThaiGD == 1'
fetch_day "$A" pg "$DAY" 5000 "$T/after" && cmp -s "$T/after" "$T/day.list" &&
	pass "after reset: the list as before" || fail "after reset: the list as before"
check "malformed: an unknown kind, every 0, an unknown op: 400" sh -c "
	[ \$(curl -s -o /dev/null -w '%{http_code}' -d '{\"op\":\"malformed\",\"kind\":\"x\"}' '$A/_sim/payment') = 400 ] &&
	[ \$(curl -s -o /dev/null -w '%{http_code}' -d '{\"op\":\"malformed\",\"kind\":\"truncated\",\"every\":0}' '$A/_sim/payment') = 400 ] &&
	[ \$(curl -s -o /dev/null -w '%{http_code}' -d '{\"op\":\"x\"}' '$A/_sim/payment') = 400 ]"

# ---- faults ----------------------------------------------------------------------------------------------------
post "$A/_sim/faults" '{"service":"paygov.giao-dich","fail_next":1}' >/dev/null
check "a fault scoped to paygov.giao-dich: 503, then 200" \
	[ "$(pg "$A" "?ngay=$DAY&limit=1") $(pg "$A" "?ngay=$DAY&limit=1")" = "503 200" ]
post "$A/_sim/faults" '{"service":"paygov.query","error_rate":1}' >/dev/null
check "a fault scoped to paygov.query: 500 for QUERY, 200 for the list" \
	[ "$(query "$A" "$R_OK") $(pg "$A" "?ngay=$DAY&limit=1")" = "500 200" ]
post "$A/_sim/faults" '{"reset":true}' >/dev/null
post "$A/_sim/faults" '{"path":"/paygov","down":true}' >/dev/null
check "a fault on the path /paygov: 503 for both, the fee records 200" \
	[ "$(query "$A" "$R_OK") $(pg "$A" "?ngay=$DAY&limit=1") $(pf "$A" "?ngay=$DAY&limit=1")" = "503 503 200" ]
post "$A/_sim/faults" '{"reset":true}' >/dev/null
post "$A/_sim/faults" '{"service":"provincial.le-phi","fail_next":1}' >/dev/null
check "a fault scoped to provincial.le-phi: 503, then 200" \
	[ "$(pf "$A" "?ngay=$DAY&limit=1") $(pf "$A" "?ngay=$DAY&limit=1")" = "503 200" ]
post "$A/_sim/faults" '{"reset":true}' >/dev/null

# ---- the stream grows --------------------------------------------------------------------------------------------
N20=$(jq -r '.days["2025-11-20"].transactions' "$T/stats")
fetch_day "$A" pg 2025-11-20 5000 "$T/d20.before" || fail "reading 2025-11-20"
post "$A/_sim/feed" '{"op":"generate","count":3000}' >/dev/null
curl -s "$A/_sim/payment/stats" >"$T/stats2"
check "generate: later dossiers pay too (more transactions and fee records)" jq -e -n \
	--slurpfile a "$T/stats" --slurpfile b "$T/stats2" \
	'$b[0].transactions > $a[0].transactions and $b[0].fee_records > $a[0].fee_records'
fetch_day "$A" pg 2025-11-20 5000 "$T/d20.after" || fail "reading 2025-11-20 again"
check "generate: the day's list grew at its end, the items read before unchanged" sh -c "
	[ \$(wc -l <'$T/d20.after') -gt $N20 ] && head -n $N20 '$T/d20.after' | cmp -s - '$T/d20.before'"
check "generate: later dossiers pay cleanly (the discrepancies unchanged)" sh -c "
	curl -s '$A/_sim/payment/expected' | jq -e --slurpfile x '$T/exp' '
		all(.counts | to_entries[] | select(.key != \"matched\"); .value == \$x[0].counts[.key]) and
		.counts.matched > \$x[0].counts.matched' >/dev/null"

# The stream may still grow while the payment side shuts down.
post "$A/_sim/feed" '{"op":"rate","per_s":5000}' >/dev/null
sleep 0.3
for p in $A_PID $B_PID $C_PID $D_PID; do
	check "SIGTERM: clean exit (A while the feed grows at 5,000 changes/s)" stop_sim "$p"
done
EXTRA_PIDS=""
finish
