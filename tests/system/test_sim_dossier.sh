#!/bin/sh
# System test of lienthong-sim's dossiers (notes/dossier-spec.md §1, §3,
# §4): the provincial change feed (paging by cursor covers every change
# exactly once and in seq order, old cursors re-read the same items, bad
# cursors and limits, the token), the stream itself for N=200 (every
# dossier's status walk is valid, times in order and in office hours, codes,
# units and citizen ids as specified, headers consistent with the status),
# the control ops (generate, malformed, rate), determinism per --seed, the
# national portal services (create, create again, update, update unknown,
# progress in arrival order, duplicates, TraCuuHoSo, mandatory fields, field
# limits, all-or-nothing batches, reset), faults scoped to DongBoHoSoMC and
# to the feed, the feed-to-portal latency figures (/_sim/portal/latency), and
# a clean SIGTERM (the ASan build must stay silent).
#
# Usage: BUILD=build sh tests/system/test_sim_dossier.sh   (needs curl and jq)
. "$(dirname "$0")/lib.sh"

no_proxy=127.0.0.1,localhost
NO_PROXY=$no_proxy
export no_proxy NO_PROXY

TOKEN=provincial-secret-token
FEED=/provincial/api/v1/ho-so/thay-doi
NOW=2025-11-20T10:00:00+07:00
EXTRA_PIDS=""
trap 'for p in $EXTRA_PIDS; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; cleanup' EXIT

# feed URL QUERY [TOKEN]: a feed GET; body in $T/body, prints the status.
feed() {
	curl -s -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer ${3:-$TOKEN}" "$1$FEED$2"
}
# fetch_all URL LIMIT OUT: every item, one per line, following next_cursor until
# has_more is false; fails when a page's next_cursor is not its last item's seq.
fetch_all() {
	: >"$3"
	c=""
	i=0
	while [ "$i" -lt 100000 ]; do
		[ "$(feed "$1" "?limit=$2&cursor=$c")" = 200 ] || return 1
		jq -e '(.items | length) == 0 or .next_cursor == (.items[-1].seq | tostring)' \
			"$T/body" >/dev/null || return 1
		jq -c '.items[]' "$T/body" >>"$3"
		c=$(jq -r .next_cursor "$T/body")
		[ "$(jq -r .has_more "$T/body")" = true ] || return 0
		i=$((i + 1))
	done
	return 1
}
# jqf FILE EXPR: FILE exists, is not empty, and EXPR holds.
jqf() { [ -s "$1" ] && jq -e "$2" "$1" >/dev/null; }
# jqs FILE EXPR: the same on the slurped lines of FILE.
jqs() { [ -s "$1" ] && jq -e -s "$2" "$1" >/dev/null; }
login() {
	curl -s -X POST -d '{"username":"lienthong","password":"secret"}' "$1/auth" | jq -r '.session // empty'
}
# integ URL SESSION SERVICE MEMBERS: an adapter call on /integration; answer in $T/ans.
integ() {
	printf '{"session":"%s","service":"%s"%s}' "$2" "$3" "$4" >"$T/req"
	curl -s -o "$T/ans" -w '%{http_code}' -X POST --data-binary @"$T/req" "$1/integration"
}
feed_op() { curl -s -X POST -d "$2" "$1/_sim/feed"; }
stop_sim() {
	kill -TERM "$1" && wait "$1" && ! grep -q -e 'Sanitizer' -e 'runtime error' "$T/sim.log"
}
# chars N CHAR: N times CHAR.
chars() { awk -v n="$1" -v c="$2" 'BEGIN { for (i = 0; i < n; i++) printf "%s", c }'; }

[ -x "$BIN/lienthong-sim" ] || { fail "$BIN/lienthong-sim not built"; finish; exit 1; }

# ---- three simulators: A and B alike, C with another seed -------------------------
sim_start --dossiers 200 --dossier-now "$NOW" || { fail "simulator A did not start"; finish; exit 1; }
A=$SIM_URL
A_PID=$SIM_PID
sim_start --dossiers 200 --dossier-now "$NOW" || { fail "simulator B did not start"; finish; exit 1; }
B=$SIM_URL
B_PID=$SIM_PID
sim_start --dossiers 200 --dossier-now "$NOW" --seed 8 || { fail "simulator C did not start"; finish; exit 1; }
C=$SIM_URL
C_PID=$SIM_PID
EXTRA_PIDS="$A_PID $B_PID $C_PID"
SIM_PID=""

curl -s "$A/_sim/feed" >"$T/state"
N=$(jq -r '.changes // 0' "$T/state")
check "GET /_sim/feed: 200 dossiers received, their changes up to now" jqf "$T/state" \
	".dossiers == 200 and .changes >= 200 and .malformed == 0 and .now == \"$NOW\" and
	 .last <= \"$NOW\" and .procedures > 1000"

# ---- paging ----------------------------------------------------------------------------
check "paging by 37 follows next_cursor to has_more false" fetch_all "$A" 37 "$T/a37"
check "paging by 1000 likewise" fetch_all "$A" 1000 "$T/a1000"
check "every change exactly once, seq 1..n in order" jqs "$T/a37" \
	"[.[].seq] == [range(1; $N + 1)]"
check "the pages of 37 and of 1000 hold the same items" cmp -s "$T/a37" "$T/a1000"
feed "$A" "" >/dev/null
check "no limit: 500 items from the beginning" jqf "$T/body" \
	"(.items | length) == ([$N, 500] | min) and .items[0].seq == 1"
feed "$A" "?cursor=&limit=3" >/dev/null
check "an empty cursor reads from the beginning" jqf "$T/body" \
	'[.items[].seq] == [1,2,3] and .next_cursor == "3" and .has_more == true'
feed "$A" "?cursor=50&limit=20" >/dev/null
cp "$T/body" "$T/old1"
check "cursor 50 limit 20: seq 51..70, next_cursor 70" jqf "$T/old1" \
	'[.items[].seq] == [range(51; 71)] and .next_cursor == "70" and .has_more == true'
sed -n '51,70p' "$T/a37" >"$T/a37.part"
jq -c '.items[]' "$T/old1" >"$T/old1.items"
check "the same items as the full read" cmp -s "$T/a37.part" "$T/old1.items"
feed "$A" "?cursor=$N" >/dev/null
check "cursor at the end: items [], has_more false" jqf "$T/body" \
	".items == [] and .has_more == false and .next_cursor == \"$N\""
feed "$A" "?cursor=99999999" >/dev/null
check "cursor beyond the end: items [], has_more false" jqf "$T/body" \
	'.items == [] and .has_more == false'
for bad in abc -1 1.5 12345678901234567890 '%20'; do
	check "malformed cursor '$bad': 400" [ "$(feed "$A" "?cursor=$bad")" = 400 ]
done
for bad in 0 1001 x; do
	check "limit $bad: 400" [ "$(feed "$A" "?limit=$bad")" = 400 ]
done
check "limit 1000 is accepted" [ "$(feed "$A" "?limit=1000")" = 200 ]
check "no token: 401" [ "$(curl -s -o /dev/null -w '%{http_code}' "$A$FEED")" = 401 ]
check "a wrong token: 401" [ "$(feed "$A" "" wrong-token)" = 401 ]

# ---- the stream for N=200 -----------------------------------------------------------------
cat >"$T/walk.jq" <<'EOF'
def code: {"MOI_DANG_KY":1,"DA_TIEP_NHAN":2,"TU_CHOI_TIEP_NHAN":3,"DANG_XU_LY":4,
	"YEU_CAU_BO_SUNG":5,"NGHIA_VU_TAI_CHINH":6,"CONG_DAN_RUT":7,"DUNG_XU_LY":8,
	"DA_XU_LY_XONG":9,"DA_TRA_KET_QUA":10}[.];
# The statuses that may follow each status (0: none yet); 3, 7, 8, 10 end a dossier.
def next_ok($p; $n): ({"0":[1,2],"1":[2,3,7],"2":[4,7],"4":[4,5,6,7,8,9],"5":[4,7,8],
	"6":[4,9],"9":[10]}[$p | tostring] // []) | index([$n]) != null;
def walk_ok: ([0] + [.[].trangThai | code]) as $w |
	all(range(1; $w | length); next_ok($w[. - 1]; $w[.]));
EOF
check "every dossier's status walk is valid (1|2 -> 4 ... -> 9 -> 10, or 3, 7, 8)" \
	jqs "$T/a37" "$(cat "$T/walk.jq") group_by(.maHoSo) | all(.[]; walk_ok)"
check "statuses are provincial names, every change of the stream belongs to a walk" \
	jqs "$T/a37" "$(cat "$T/walk.jq") all(.[]; (.trangThai | code) != null)"
check "times never go back, in the feed and per dossier" jqs "$T/a37" \
	'([.[].thoiDiem] | . == sort) and (group_by(.maHoSo) | all(.[]; [.[].thoiDiem] | . == sort))'
check "times are ISO 8601 in +07:00" jqs "$T/a37" \
	'all(.[]; (.thoiDiem | test("^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]\\+07:00$")) and
		.buocXuLy.thoiDiem == .thoiDiem)'
check "officials act in office hours (Mon-Fri 07:30-11:30, 13:30-17:00)" jqs "$T/a37" \
	'all(.[] | select(.trangThai != "MOI_DANG_KY" and .trangThai != "CONG_DAN_RUT");
		(.thoiDiem[0:19] | strptime("%Y-%m-%dT%H:%M:%S")) as $t | ($t[3] * 60 + $t[4]) as $m |
		$t[6] >= 1 and $t[6] <= 5 and (($m >= 450 and $m < 690) or ($m >= 810 and $m < 1020)))'
check "codes are <agency>-<yyMMdd of the first change>-<5 digits>, also in the header" jqs "$T/a37" \
	'all(.[]; .hoSo.maHoSo == .maHoSo and
		(.maHoSo | test("^(000\\.00\\.[0-9]{2}\\.H31|H31\\.[0-9]{5})-[0-9]{6}-[0-9]{5}$"))) and
	 (group_by(.maHoSo) | all(.[]; .[0].maHoSo[-12:-6] ==
		(.[0].thoiDiem[2:4] + .[0].thoiDiem[5:7] + .[0].thoiDiem[8:10])))'
check "units: departments of the agency list or communes (UBND-<5 digits>)" jqs "$T/a37" \
	'all(.[]; .hoSo.donViXuLy | test("^(UBND-TINH|VP-UBND|SNV|STP|STC|SCT|SNNMT|SXD|SGDDT|SYT|SVHTTDL|SKHCN|SDTTG|TTRA|CATINH|UBND-[0-9]{5})$"))'
check "a department's dossier code carries its agency id (STP -> 000.00.03.H31)" jqs "$T/a37" \
	'all(.[] | select(.hoSo.donViXuLy == "STP"); .maHoSo | startswith("000.00.03.H31-"))'
check "citizen ids of 12 digits (CCCD), some of 9 (CMND)" jqs "$T/a37" \
	'all(.[]; .hoSo.chuHoSo.soGiayTo | test("^([0-9]{12}|[0-9]{9})$")) and
	 any(.[]; .hoSo.chuHoSo.soGiayTo | length == 9) and
	 ([.[].hoSo.chuHoSo.hoTen] | unique | length) > 100'
check "procedures of the catalogue with their field of work; channel 1..3" jqs "$T/a37" \
	'all(.[]; (.hoSo.maThuTuc | test("^[12]\\.[0-9]{6}\\.000\\.00\\.00\\.H31$")) and
		(.hoSo.tenThuTuc | length) > 5 and (.hoSo.tenLinhVuc | length) > 2 and
		([.hoSo.kenhNop] | inside([1,2,3])))'
check "the header follows the status (dates, supplements, results)" jqs "$T/a37" '
	all(.[]; .trangThai as $s | .hoSo as $h |
		(if ["DA_TIEP_NHAN","DANG_XU_LY","YEU_CAU_BO_SUNG","NGHIA_VU_TAI_CHINH","DA_XU_LY_XONG",
		     "DA_TRA_KET_QUA"] | index([$s]) then $h.ngayTiepNhan != null and $h.ngayHenTra != null
		 else true end) and
		(if $s == "MOI_DANG_KY" then $h.ngayTiepNhan == null and .hoSo.kenhNop == 2 else true end) and
		(if $s == "TU_CHOI_TIEP_NHAN" then $h.ngayTuChoi != null else true end) and
		(if $s == "YEU_CAU_BO_SUNG" then ($h.boSung | length) > 0 and
			$h.boSung[-1].ngayHenTraMoi == null else true end) and
		(if $s == "DA_XU_LY_XONG" then $h.ngayKetThuc != null and ($h.ketQua | length) == 1
		 else true end) and
		(if $s == "DA_TRA_KET_QUA" then $h.ngayTra != null and $h.ngayKetThuc != null
		 else true end))'
# The mix of spec §4 over a larger stream (default N, other seed).
sim_start --dossier-now "$NOW" --seed 8 || fail "simulator D did not start"
D=$SIM_URL
EXTRA_PIDS="$EXTRA_PIDS $SIM_PID"
D_PIDX=$SIM_PID
SIM_PID=""
fetch_all "$D" 1000 "$T/d" || fail "reading simulator D's feed"
check "N=1000: every status occurs, some late, some open and overdue, some from before the reform" \
	jqs "$T/d" "$(cat "$T/walk.jq")
	group_by(.maHoSo) | map(last) as \$last |
	([.[][] | .trangThai | code] | unique) == [1,2,3,4,5,6,7,8,9,10] and
	any(\$last[]; (.trangThai == \"DA_XU_LY_XONG\" or .trangThai == \"DA_TRA_KET_QUA\") and
		.hoSo.ngayKetThuc > .hoSo.ngayHenTra) and
	any(\$last[]; ([.trangThai | code] | inside([2,4,5,6])) and .hoSo.ngayHenTra < \"$NOW\") and
	any(\$last[]; .hoSo.ngayTiepNhan != null and .hoSo.ngayTiepNhan < \"2025-07-01\" and
		(.hoSo.donViXuLy | startswith(\"UBND-\")) and .thoiDiem > \"2025-07-01\") and
	all(.[]; walk_ok)"

# ---- determinism ------------------------------------------------------------------------------
fetch_all "$B" 1000 "$T/b" || fail "reading simulator B's feed"
fetch_all "$C" 1000 "$T/c" || fail "reading simulator C's feed"
check "same seed: byte-identical feeds" cmp -s "$T/a1000" "$T/b"
check "another seed: another feed" sh -c "[ -s '$T/c' ] && ! cmp -s '$T/a1000' '$T/c'"

# ---- generate ------------------------------------------------------------------------------------
feed_op "$A" '{"op":"generate","count":500}' >"$T/gen"
check "generate 500: answers the new seqs" jqf "$T/gen" \
	".ok == true and .first_seq == $N + 1 and .last_seq == $N + 500"
feed_op "$B" '{"op":"generate","count":500}' >/dev/null
feed "$A" "?cursor=50&limit=20" >/dev/null
check "an old cursor re-reads the same items after the feed grew" cmp -s "$T/body" "$T/old1"
fetch_all "$A" 1000 "$T/a2" || fail "reading A after generate"
fetch_all "$B" 1000 "$T/b2" || fail "reading B after generate"
check "after generate: seq 1..n+500, the old items unchanged, times in order" sh -c "
	jq -e -s '[.[].seq] == [range(1; $N + 501)] and ([.[].thoiDiem] | . == sort) and
		all(.[$N:][]; .thoiDiem >= \"$NOW\")' '$T/a2' >/dev/null &&
	head -n $N '$T/a2' | cmp -s - '$T/a1000'"
check "after generate: every walk still valid" \
	jqs "$T/a2" "$(cat "$T/walk.jq") group_by(.maHoSo) | all(.[]; walk_ok)"
check "generate is deterministic too" cmp -s "$T/a2" "$T/b2"
check "generate: count 0 or not a number is 400" sh -c "
	[ \"\$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{\"op\":\"generate\",\"count\":0}' '$A/_sim/feed')\" = 400 ] &&
	[ \"\$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{\"op\":\"generate\",\"count\":\"5\"}' '$A/_sim/feed')\" = 400 ] &&
	[ \"\$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{\"op\":\"nope\"}' '$A/_sim/feed')\" = 400 ]"

# ---- malformed -------------------------------------------------------------------------------------
M0=$((N + 500))
feed_op "$A" '{"op":"malformed","count":4}' >"$T/mal"
check "malformed 4: one of each kind, appended" jqf "$T/mal" \
	".ok == true and .seqs == [range($M0 + 1; $M0 + 5)] and
	 .kinds == [\"status\",\"unit\",\"dates\",\"oversize\"]"
feed "$A" "?cursor=$M0" >/dev/null
cp "$T/body" "$T/malpage"
check "malformed: an unknown status" jqf "$T/malpage" \
	'.items[0].trangThai as $s | ["MOI_DANG_KY","DA_TIEP_NHAN","TU_CHOI_TIEP_NHAN","DANG_XU_LY",
		"YEU_CAU_BO_SUNG","NGHIA_VU_TAI_CHINH","CONG_DAN_RUT","DUNG_XU_LY","DA_XU_LY_XONG",
		"DA_TRA_KET_QUA"] | index([$s]) == null'
check "malformed: an unknown unit" jqf "$T/malpage" '.items[1].hoSo.donViXuLy == "UBND-99999"'
check "malformed: mandatory dates missing (ngayTiepNhan, buocXuLy.thoiDiem)" jqf "$T/malpage" \
	'.items[2].trangThai == "DA_TIEP_NHAN" and .items[2].hoSo.ngayTiepNhan == null and
	 (.items[2].buocXuLy | has("thoiDiem") | not)'
check "malformed: oversize trichYeu (> 2000), hoTen (> 500), noiDung (> 2000)" jqf "$T/malpage" \
	'(.items[3].hoSo.trichYeu | length) > 2000 and (.items[3].hoSo.chuHoSo.hoTen | length) > 500 and
	 (.items[3].buocXuLy.noiDung | length) > 2000'
check "malformed changes keep the feed in time order" jqf "$T/malpage" \
	'[.items[].thoiDiem] | . == sort'
feed_op "$A" '{"op":"malformed","count":2,"kind":"unit"}' >"$T/mal2"
check "malformed with a kind: only that kind" jqf "$T/mal2" '.kinds == ["unit","unit"]'
check "malformed: an unknown kind is 400" [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST \
	-d '{"op":"malformed","count":1,"kind":"x"}' "$A/_sim/feed")" = 400 ]

# ---- rate ----------------------------------------------------------------------------------------------
before=$(curl -s "$A/_sim/feed" | jq -r .changes)
feed_op "$A" '{"op":"rate","per_s":500}' >"$T/rate"
check "rate 500/s: accepted" jqf "$T/rate" '.ok == true and .per_s == 500'
grown() { [ "$(curl -s "$A/_sim/feed" | jq -r .changes)" -ge $((before + 200)) ]; }
check "rate 500/s: the feed grows by itself" wait_until 10 grown
feed_op "$A" '{"op":"rate","per_s":0}' >/dev/null
sleep 0.2
n1=$(curl -s "$A/_sim/feed" | jq -r .changes)
sleep 0.3
n2=$(curl -s "$A/_sim/feed" | jq -r .changes)
check "rate 0 stops it" [ "$n1" = "$n2" ]
fetch_all "$A" 1000 "$T/a3" || fail "reading A after rate"
check "after rate: seq 1..n in order, every walk of the stream still valid" jqs "$T/a3" \
	"$(cat "$T/walk.jq") ([.[].seq] == [range(1; $n2 + 1)]) and
	 (map(select(.maHoSo | test(\"-9[0-9]{4}\$\") | not)) | group_by(.maHoSo) | all(.[]; walk_ok))"

# ---- the portal --------------------------------------------------------------------------------------------
S=$(login "$A")
check "a session" test -n "$S"
M1=000.00.03.H31-251120-00001
M2=H31.11953-251120-00002
H1="{\"MaHoSo\":\"$M1\",\"MaTTHC\":\"1.001193.000.00.00.H31\",\"TrangThaiHoSo\":2,\"NgayTiepNhan\":\"20251120083000\",\"TrichYeuHoSo\":\"Cấp bản sao trích lục\",\"ChuHoSo\":\"Nguyễn Thị Thu Hương\",\"KenhThucHien\":1}"
H1b="{\"MaHoSo\":\"$M1\",\"MaTTHC\":\"1.001193.000.00.00.H31\",\"TrangThaiHoSo\":4,\"NgayTiepNhan\":\"20251120083000\",\"NgayHenTra\":\"20251125083000\"}"
H2="{\"MaHoSo\":\"$M2\",\"MaTTHC\":\"2.000001.000.00.00.H31\",\"TrangThaiHoSo\":\"1\"}"
row() { printf '{"MaHoSo":"%s","ThoiDiemXuLy":"%s","TrangThai":%s,"NoiDungXuLy":"%s","NguoiXuLy":"Trần Văn B"}' "$1" "$2" "$3" "$4"; }
R1=$(row "$M1" 20251120083000 2 "Tiếp nhận hồ sơ")
R2=$(row "$M1" 20251120090000 4 "Chuyển xử lý")
R3=$(row "$M1" 20251120080000 4 "Thẩm định")

integ "$A" "$S" TraCuuHoSo ",\"mahoso\":\"$M1\"" >/dev/null
check "TraCuuHoSo before: result []" jqf "$T/ans" '.error_code == 0 and .result == []'
integ "$A" "$S" DongBoHoSoMC ",\"isUpdating\":\"False\",\"data\":[$H1]" >/dev/null
check "DongBoHoSoMC create: ok" jqf "$T/ans" ".error_code == 0 and .result == [{\"MaHoSo\":\"$M1\"}]"
integ "$A" "$S" TraCuuHoSo ",\"mahoso\":\"$M1\"" >/dev/null
check "TraCuuHoSo after: the header, QuaTrinhXuLy []" jqf "$T/ans" \
	".error_code == 0 and (.result | length) == 1 and .result[0].MaHoSo == \"$M1\" and
	 .result[0].ChuHoSo == \"Nguyễn Thị Thu Hương\" and .result[0].QuaTrinhXuLy == []"
integ "$A" "$S" DongBoHoSoMC ",\"isUpdating\":\"False\",\"data\":[$H1]" >/dev/null
check "create again: error_code \"-1\", \"đã tồn tại\" naming the dossier" jqf "$T/ans" \
	".error_code == \"-1\" and (.message | contains(\"$M1\") and contains(\"đã tồn tại\"))"
integ "$A" "$S" DongBoHoSoMC ",\"isUpdating\":\"True\",\"data\":[$H1b]" >/dev/null
check "update: ok" jqf "$T/ans" '.error_code == 0'
integ "$A" "$S" DongBoHoSoMC ",\"isUpdating\":\"True\",\"data\":[$H2]" >/dev/null
check "update of an unknown dossier: \"không tồn tại\" naming it" jqf "$T/ans" \
	".error_code == \"-1\" and (.message | contains(\"$M2\") and contains(\"không tồn tại\"))"
curl -s "$A/_sim/portal/dossier?mahoso=$M1" >"$T/pd"
check "the portal keeps the latest header, 2 received" jqf "$T/pd" \
	'.header.TrangThaiHoSo == 4 and .header.NgayHenTra == "20251125083000" and
	 (.header | has("ChuHoSo") | not) and .headers_received == 2 and .progress == []'

integ "$A" "$S" CapNhatTienDoHoSoMC ",\"data\":[$R1,$R2]" >/dev/null
check "CapNhatTienDoHoSoMC: ok" jqf "$T/ans" '.error_code == 0'
integ "$A" "$S" CapNhatTienDoHoSoMC ",\"data\":[$R3]" >/dev/null
curl -s "$A/_sim/portal/dossier?mahoso=$M1" >"$T/pd"
check "progress rows listed in arrival order (not time order)" jqf "$T/pd" \
	'[.progress[].ThoiDiemXuLy] == ["20251120083000","20251120090000","20251120080000"]'
curl -s "$A/_sim/portal/stats" >"$T/ps"
check "stats: 1 dossier, 3 rows, no duplicate" jqf "$T/ps" \
	'.dossiers == 1 and .progress_rows == 3 and .duplicates == 0'
integ "$A" "$S" CapNhatTienDoHoSoMC ",\"data\":[$R1]" >/dev/null
R1x=$(row "$M1" 20251120083000 2 "Tiếp nhận hồ sơ (khác)")
integ "$A" "$S" CapNhatTienDoHoSoMC ",\"data\":[$R1x]" >/dev/null
curl -s "$A/_sim/portal/stats" >"$T/ps"
check "a row received twice is kept and counted as a duplicate; another text is not" jqf "$T/ps" \
	'.progress_rows == 5 and .duplicates == 1'
integ "$A" "$S" TraCuuHoSo ",\"mahoso\":\"$M1\"" >/dev/null
check "TraCuuHoSo: the latest header with every row in arrival order" jqf "$T/ans" \
	'.result[0].TrangThaiHoSo == 4 and
	 [.result[0].QuaTrinhXuLy[].NoiDungXuLy] == ["Tiếp nhận hồ sơ","Chuyển xử lý","Thẩm định",
		"Tiếp nhận hồ sơ","Tiếp nhận hồ sơ (khác)"]'

# mandatory fields and limits
bad_header() { # DESC MEMBERS FIELD
	integ "$A" "$S" DongBoHoSoMC ",\"isUpdating\":\"False\",\"data\":[{$2}]" >/dev/null
	check "$1" jqf "$T/ans" ".error_code == \"-1\" and (.message | contains(\"$3\"))"
}
bad_header "a header without MaHoSo is refused naming the field" \
	'"MaTTHC":"1","TrangThaiHoSo":1' MaHoSo
bad_header "a header without MaTTHC is refused naming the field" \
	'"MaHoSo":"X-1","TrangThaiHoSo":1' MaTTHC
bad_header "a header without TrangThaiHoSo is refused naming the field" \
	'"MaHoSo":"X-1","MaTTHC":"1"' TrangThaiHoSo
bad_header "status 2 without NgayTiepNhan is refused naming the field" \
	'"MaHoSo":"X-1","MaTTHC":"1","TrangThaiHoSo":2' NgayTiepNhan
bad_header "a date not yyyyMMddHHmmss is refused naming the field" \
	'"MaHoSo":"X-1","MaTTHC":"1","TrangThaiHoSo":2,"NgayTiepNhan":"2025-11-20T08:30:00+07:00"' NgayTiepNhan
bad_header "TrichYeuHoSo of 2001 characters is refused" \
	"\"MaHoSo\":\"X-1\",\"MaTTHC\":\"1\",\"TrangThaiHoSo\":1,\"TrichYeuHoSo\":\"$(chars 2001 ệ)\"" TrichYeuHoSo
bad_header "ChuHoSo of 501 characters is refused" \
	"\"MaHoSo\":\"X-1\",\"MaTTHC\":\"1\",\"TrangThaiHoSo\":1,\"ChuHoSo\":\"$(chars 501 ữ)\"" ChuHoSo
integ "$A" "$S" DongBoHoSoMC ",\"isUpdating\":\"False\",\"data\":[{\"MaHoSo\":\"X-1\",\"MaTTHC\":\"1\",\"TrangThaiHoSo\":1,\"TrichYeuHoSo\":\"$(chars 2000 ệ)\",\"ChuHoSo\":\"$(chars 500 ữ)\"}]" >/dev/null
check "status 1 without NgayTiepNhan, TrichYeuHoSo 2000 and ChuHoSo 500 characters: accepted" \
	jqf "$T/ans" '.error_code == 0'
integ "$A" "$S" CapNhatTienDoHoSoMC ",\"data\":[{\"MaHoSo\":\"$M1\",\"TrangThai\":4}]" >/dev/null
check "a row without ThoiDiemXuLy is refused naming the field and the dossier" jqf "$T/ans" \
	".error_code == \"-1\" and (.message | contains(\"ThoiDiemXuLy\") and contains(\"$M1\"))"
integ "$A" "$S" CapNhatTienDoHoSoMC ",\"data\":[$(row "$M1" 20251120100000 4 "$(chars 2001 x)")]" >/dev/null
check "NoiDungXuLy of 2001 characters is refused" jqf "$T/ans" \
	'.error_code == "-1" and (.message | contains("NoiDungXuLy"))'
integ "$A" "$S" DongBoHoSoMC ",\"isUpdating\":\"maybe\",\"data\":[$H2]" >/dev/null
check "isUpdating other than True/False is refused" jqf "$T/ans" '.error_code == "-1"'
integ "$A" "$S" TraCuuHoSo "" >/dev/null
check "TraCuuHoSo without mahoso: an error" jqf "$T/ans" '.error_code != 0'

# all or nothing
rows_before=$(curl -s "$A/_sim/portal/stats" | jq -r .progress_rows)
H3="{\"MaHoSo\":\"H31.11953-251120-00003\",\"MaTTHC\":\"1\",\"TrangThaiHoSo\":1}"
integ "$A" "$S" DongBoHoSoMC ",\"isUpdating\":\"False\",\"data\":[$H2,$H1,$H3]" >/dev/null
check "a create batch with one known dossier is refused naming it" jqf "$T/ans" \
	".error_code == \"-1\" and (.message | contains(\"$M1\") and contains(\"đã tồn tại\"))"
integ "$A" "$S" TraCuuHoSo ",\"mahoso\":\"$M2\"" >/dev/null
check "... and nothing of it is stored" jqf "$T/ans" '.result == []'
integ "$A" "$S" DongBoHoSoMC ",\"isUpdating\":\"False\",\"data\":[$H2,$H2]" >/dev/null
check "the same dossier twice in a create batch: refused, nothing stored" sh -c "
	jq -e '.error_code == \"-1\" and (.message | contains(\"đã tồn tại\"))' '$T/ans' >/dev/null &&
	curl -s '$A/_sim/portal/dossier?mahoso=$M2' | jq -e '.header == null' >/dev/null"
integ "$A" "$S" DongBoHoSoMC ",\"isUpdating\":\"True\",\"data\":[$H1,$H2]" >/dev/null
curl -s "$A/_sim/portal/dossier?mahoso=$M1" >"$T/pd"
check "an update batch with an unknown dossier is refused; the known one is unchanged" sh -c "
	jq -e '.error_code == \"-1\" and (.message | contains(\"$M2\"))' '$T/ans' >/dev/null &&
	jq -e '.headers_received == 2 and .header.TrangThaiHoSo == 4' '$T/pd' >/dev/null"
integ "$A" "$S" CapNhatTienDoHoSoMC ",\"data\":[$(row "$M1" 20251120110000 4 "Trình ký"),$(row "$M2" 20251120110000 4 "x")]" >/dev/null
check "a progress batch with a row of an unknown dossier is refused naming it, nothing stored" sh -c "
	jq -e '.error_code == \"-1\" and (.message | contains(\"$M2\"))' '$T/ans' >/dev/null &&
	[ \"\$(curl -s '$A/_sim/portal/stats' | jq -r .progress_rows)\" = $rows_before ]"
integ "$A" "$S" DongBoHoSoMC ",\"isUpdating\":\"False\",\"data\":[$H2,$H3]" >/dev/null
check "a clean create batch of two: both stored" sh -c "
	jq -e '.error_code == 0' '$T/ans' >/dev/null &&
	curl -s '$A/_sim/portal/stats' | jq -e '.dossiers == 4' >/dev/null"
SIM_URL=$A
check "the received headers are in the stats records" \
	sim_json "/_sim/stats?service=DongBoHoSoMC" '.received_count >= 10'
# Faults scoped to DongBoHoSoMC: it fails, the other services do not.
curl -s -X POST -d '{"service":"DongBoHoSoMC","error_rate":1}' "$A/_sim/faults" >/dev/null
c1=$(integ "$A" "$S" DongBoHoSoMC ",\"isUpdating\":\"True\",\"data\":[$H1]")
c2=$(integ "$A" "$S" TraCuuHoSo ",\"mahoso\":\"$M1\"")
c3=$(integ "$A" "$S" CapNhatTienDoHoSoMC ",\"data\":[$(row "$M1" 20251120140000 4 "Sau lỗi")]")
check "a fault scoped to DongBoHoSoMC: 500 for it, 200 for TraCuuHoSo and CapNhatTienDoHoSoMC" \
	[ "$c1 $c2 $c3" = "500 200 200" ]
check "the faulted update stored nothing" sim_json "/_sim/portal/dossier?mahoso=$M1" \
	'.headers_received == 2'
curl -s -X POST -d '{"reset":true}' "$A/_sim/faults" >/dev/null
curl -s -X POST -d '{"path":"/provincial/api/v1/ho-so","down":true}' "$A/_sim/faults" >/dev/null
check "a fault scoped to the path /provincial/api/v1/ho-so: the feed answers 503" \
	[ "$(feed "$A" "?limit=1")" = 503 ]
curl -s -X POST -d '{"reset":true}' "$A/_sim/faults" >/dev/null
curl -s -X POST -d '{"service":"provincial.ho-so.thay-doi","fail_next":1}' "$A/_sim/faults" >/dev/null
check "a fault scoped to the route provincial.ho-so.thay-doi: 503, then 200" \
	[ "$(feed "$A" "?limit=1") $(feed "$A" "?limit=1")" = "503 200" ]
curl -s -X POST -d '{"reset":true}' "$A/_sim/faults" >/dev/null

curl -s -X POST -d '{"op":"reset"}' "$A/_sim/portal" >"$T/reset"
check "POST /_sim/portal reset: the portal forgets everything" sh -c "
	jq -e '.ok == true' '$T/reset' >/dev/null &&
	curl -s '$A/_sim/portal/stats' | jq -e '.dossiers == 0 and .progress_rows == 0 and .duplicates == 0' >/dev/null &&
	curl -s '$A/_sim/portal/dossier?mahoso=$M1' | jq -e '.header == null and .progress == []' >/dev/null"
check "POST /_sim/portal with another op: 400" [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST \
	-d '{"op":"x"}' "$A/_sim/portal")" = 400 ]

# ---- latency from the feed to the portal -------------------------------------------------------
# 20 new changes; after 0.3 s their rows as the progress mapping makes them
# (MaHoSo, ThoiDiemXuLy yyyyMMddHHmmss of buocXuLy.thoiDiem, national TrangThai).
lat() { curl -s "$A/_sim/portal/latency" >"$T/lat"; }
lat
check "GET /_sim/portal/latency after a portal reset: no rows, quantiles null" jqf "$T/lat" \
	'.rows == 0 and .unmatched == 0 and .repeated == 0 and .p99_s == null and .max_s == null and
	 (.since | test("^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-9:]{8}\\+07:00$"))'
feed_op "$A" '{"op":"generate","count":20}' >"$T/gen20"
G1=$(jq -r '.first_seq // 0' "$T/gen20")
feed "$A" "?cursor=$((G1 - 1))&limit=20" >/dev/null
cp "$T/body" "$T/g20"
jq -c '[.items[].maHoSo] | unique | map({MaHoSo: ., MaTTHC: "1", TrangThaiHoSo: 1})' "$T/g20" >"$T/g20.h"
jq -c "$(cat "$T/walk.jq") [.items[] | {MaHoSo: .maHoSo, TrangThai: (.trangThai | code),
	ThoiDiemXuLy: (.buocXuLy.thoiDiem[0:19] | gsub(\"[-T:]\"; \"\")), NoiDungXuLy: .buocXuLy.noiDung}]" \
	"$T/g20" >"$T/g20.r"
check "20 changes generated, their rows made" jqf "$T/g20.r" 'length == 20'
sleep 0.3
integ "$A" "$S" DongBoHoSoMC ",\"isUpdating\":\"False\",\"data\":$(cat "$T/g20.h")" >/dev/null
integ "$A" "$S" CapNhatTienDoHoSoMC ",\"data\":$(cat "$T/g20.r")" >/dev/null
check "the 20 rows are accepted" jqf "$T/ans" '.error_code == 0 and (.result | length) == 20'
lat
check "latency: 20 rows matched, none unmatched, 0.3 s <= p50 <= p90 <= p99 <= max < 30 s" jqf "$T/lat" \
	'.rows == 20 and .unmatched == 0 and .repeated == 0 and .p50_s >= 0.3 and
	 .p50_s <= .p90_s and .p90_s <= .p99_s and .p99_s <= .max_s and .max_s < 30 and
	 .mean_s >= 0.3 and .mean_s <= .max_s and .elapsed_s >= 0'
M20=$(jq -r '.[0].MaHoSo' "$T/g20.r")
T20=$(jq -r '.[0].ThoiDiemXuLy' "$T/g20.r")
integ "$A" "$S" CapNhatTienDoHoSoMC ",\"data\":[$(jq -c '.[0]' "$T/g20.r"),$(row "$M20" "$T20" 8 "Dừng"),$(row "$M20" 20991231235959 4 "x")]" >/dev/null
lat
check "latency: a row again is repeated; another status or time is unmatched" jqf "$T/lat" \
	'.rows == 20 and .repeated == 1 and .unmatched == 2'
curl -s -X POST -d '{"op":"reset"}' "$A/_sim/portal/latency" >"$T/lreset"
lat
check "POST /_sim/portal/latency reset: the figures start again" sh -c "
	jq -e '.ok == true' '$T/lreset' >/dev/null &&
	jq -e '.rows == 0 and .unmatched == 0 and .repeated == 0 and .p50_s == null and .elapsed_s < 5' '$T/lat' >/dev/null"
integ "$A" "$S" CapNhatTienDoHoSoMC ",\"data\":$(cat "$T/g20.r")" >/dev/null
lat
check "... but a change received before the reset counts as repeated, not as a new row" jqf "$T/lat" \
	'.rows == 0 and .repeated == 20 and .p99_s == null'
check "POST /_sim/portal/latency with another op: 400" [ "$(curl -s -o /dev/null -w '%{http_code}' \
	-X POST -d '{"op":"x"}' "$A/_sim/portal/latency")" = 400 ]
curl -s -X POST -d '{"op":"reset"}' "$A/_sim/portal" >/dev/null
integ "$A" "$S" DongBoHoSoMC ",\"isUpdating\":\"False\",\"data\":$(cat "$T/g20.h")" >/dev/null
integ "$A" "$S" CapNhatTienDoHoSoMC ",\"data\":$(cat "$T/g20.r")" >/dev/null
lat
check "a portal reset forgets which changes were received: the rows count again" jqf "$T/lat" \
	'.rows == 20 and .repeated == 0 and .p50_s >= 0.3'

# ---- a clean stop -----------------------------------------------------------------------------------------
check "SIGTERM: simulator B exits 0 without a sanitizer report" stop_sim "$B_PID"
check "SIGTERM: simulator C exits 0 without a sanitizer report" stop_sim "$C_PID"
check "SIGTERM: simulator D exits 0 without a sanitizer report" stop_sim "$D_PIDX"
check "SIGTERM: simulator A exits 0 without a sanitizer report" stop_sim "$A_PID"
EXTRA_PIDS=""
finish
