#!/bin/sh
# System test of lienthong-sim's procedure catalogue (notes/catalog-spec.md
# §1, §2, §4, §5): the four CSDL services on /share, the messy national
# records, the provincial REST API and its bearer token, paging, PUT, the
# seeded differences for N=2000, every run-time change, fault injection on
# the new services and routes, determinism per --seed (two simulators with
# the same seed answer byte for byte the same, another seed differs), and
# a clean SIGTERM (the ASan build must stay silent).
#
# With python3 present, an independent reference of the spec's §3 mapping
# checks that every procedure not listed in /_sim/catalog/differences maps
# exactly (type for type) to the provincial record the simulator serves.
#
# Usage: BUILD=build sh tests/system/test_sim_catalog.sh   (needs curl and jq)
. "$(dirname "$0")/lib.sh"

no_proxy=127.0.0.1,localhost
NO_PROXY=$no_proxy
export no_proxy NO_PROXY

# sort and comm must agree on the order of codes.
LC_ALL=C
export LC_ALL
TOKEN=provincial-secret-token
API=/provincial/api/v1/thu-tuc
EXTRA_PIDS=""
trap 'for p in $EXTRA_PIDS; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; cleanup' EXIT

# login URL: prints a session.
login() {
	curl -s -X POST -d '{"username":"lienthong","password":"secret"}' "$1/auth" | jq -r '.session // empty'
}
# share URL SESSION SERVICE [EXTRA MEMBERS]: the answer of an adapter call on /share.
share() {
	curl -s -X POST -d "{\"session\":\"$2\",\"service\":\"$3\"${4:-}}" "$1/share"
}
lay() { share "$1" "$2" LayThuTuc ",\"maTTHC\":\"$3\""; }
# pget URL PATH [TOKEN]: a provincial GET; body in $T/body, prints the status.
pget() {
	curl -s -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer ${3:-$TOKEN}" "$1$2"
}
# pput URL CODE BODY: a provincial PUT; body in $T/body, prints the status.
pput() {
	curl -s -o "$T/body" -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" \
		-H 'Content-Type: application/json' --data-binary "$3" "$1$API/$2"
}
ctl_post() { curl -s -X POST -d "$2" "$1$3"; }
cat_op() { ctl_post "$1" "$2" /_sim/catalog; }
# jqf FILE EXPR: FILE exists, is not empty, and EXPR holds.
jqf() { [ -s "$1" ] && jq -e "$2" "$1" >/dev/null; }
# jqs FILE EXPR: the same on the slurped stream of JSON values in FILE.
jqs() { [ -s "$1" ] && jq -e -s "$2" "$1" >/dev/null; }
# fetch_records URL SESSION CODES OUT: LayThuTuc for each code (one per line) over one
# connection; the answers concatenated in OUT.
fetch_records() {
	awk -v u="$1/share" -v s="$2" 'NR > 1 { print "next" }
		{ printf "url = \"%s\"\ndata = \"{\\\"session\\\":\\\"%s\\\",\\\"service\\\":\\\"LayThuTuc\\\",\\\"maTTHC\\\":\\\"%s\\\"}\"\n", u, s, $0 }' \
		"$3" >"$T/curl.cfg"
	curl -s -K "$T/curl.cfg" >"$4"
}
# fetch_pages URL SIZE OUT: every provincial page (until an empty one) concatenated in OUT.
fetch_pages() {
	: >"$3"
	p=1
	while [ "$p" -le 1000 ]; do
		pget "$1" "$API?page=$p&size=$2" >/dev/null
		cat "$T/body" >>"$3"
		jqf "$T/body" '.data | length > 0' || break
		p=$((p + 1))
	done
}
# snapshot URL SESSION PREFIX: the list, every national record, the provincial pages and
# the differences into $T/PREFIX.*.
snapshot() {
	share "$1" "$2" LayDanhSachTTHC >"$T/$3.list"
	curl -s "$1/_sim/catalog/differences" >"$T/$3.diff"
	{ jq -r '.result[].MATTHC' "$T/$3.list"; jq -r '.withdrawn[]' "$T/$3.diff"; } >"$T/$3.codes"
	fetch_records "$1" "$2" "$T/$3.codes" "$T/$3.nat"
	fetch_pages "$1" 500 "$T/$3.prov"
}
# stop_sim PID: SIGTERM, exit status 0 and no sanitizer report in the log.
stop_sim() {
	kill -TERM "$1" && wait "$1" && ! grep -q -e 'Sanitizer' -e 'runtime error' "$T/sim.log"
}

[ -x "$BIN/lienthong-sim" ] || { fail "$BIN/lienthong-sim not built"; finish; exit 1; }

# ---- three simulators: A and B with seed 7, C with seed 8 ------------------
sim_start --procedures 2000 || { fail "simulator A did not start"; finish; exit 1; }
A=$SIM_URL
A_PID=$SIM_PID
sim_start --procedures 2000 || { fail "simulator B did not start"; finish; exit 1; }
B=$SIM_URL
B_PID=$SIM_PID
sim_start --procedures 2000 --seed 8 || { fail "simulator C did not start"; finish; exit 1; }
C=$SIM_URL
C_PID=$SIM_PID
EXTRA_PIDS="$A_PID $B_PID"
SA=$(login "$A")
SB=$(login "$B")
SC=$(login "$C")
check "a session from each simulator" test -n "$SA" -a -n "$SB" -a -n "$SC"

snapshot "$A" "$SA" a
snapshot "$B" "$SB" b
snapshot "$C" "$SC" c

# ---- the national side -----------------------------------------------------
curl -s "$A/_sim/catalog" >"$T/summary"
check "GET /_sim/catalog: 2000 procedures, 1996 published, 4 withdrawn" jqf "$T/summary" \
	'.procedures == 2000 and .published == 1996 and .withdrawn == 4'
check "LayDanhSachTTHC lists the published procedures, once each, in code order" \
	jqf "$T/a.list" '.error_code == 0 and (.result | length) == 1996 and
		(.result | map(.MATTHC) | . == (sort | unique)) and
		all(.result[]; (.MATTHC | test("^[12]\\.[0-9]{6}\\.000\\.00\\.00\\.H31$")) and
			(.TENTTHC | type) == "string")'
check "LayDanhSachTTHC omits the withdrawn procedures" jq -e -n \
	--slurpfile l "$T/a.list" --slurpfile d "$T/a.diff" \
	'($l[0].result | map(.MATTHC)) as $c | all($d[0].withdrawn[]; . as $w | $c | index([$w]) == null)'
check "the differences of a fresh N=2000 catalogue are the seeded counts" jqf "$T/a.diff" \
	'map_values(length) == {"missing":10,"unknown":3,"withdrawn":4,"fee":6,"time_limit":5,
		"channel":3,"documents":4,"agency":3,"unmappable":2,"malformed":2,"other":0}'
check "the seeded difference lists are disjoint" jqf "$T/a.diff" \
	'[.[][]] | length == (unique | length)'

# One pass over the 2000 answers (7 MB) computes every fact the checks below look at.
jq -c '.result' "$T/a.nat" >"$T/results"
jq -s --slurpfile d "$T/a.diff" --slurpfile l "$T/a.list" '
	def nfd: explode | any(.[]; . >= 768 and . <= 803);
	def spaced: test("^ | $");
	(map(.[0] | objects)) as $r |
	[$r[].CACHTHUCTHUCHIEN[0].THOIGIAN[0].PHILEPHI[]] as $fees |
	($fees | map(.SOTIEN | strings)) as $s |
	[$r[].CACHTHUCTHUCHIEN[0].THOIGIAN[0].THOIGIANGIAIQUYET] as $t |
	[.[] | .[0] | select(type == "string" or (has("TENTTHC") | not))] as $m |
	{
	  answers: (length == 2000 and all(.[]; length == 1)),
	  list_names: (($l[0].result | map({(.MATTHC): .TENTTHC}) | add) as $n |
		all($r[] | select(has("TENTTHC")); $n[.MATTHC] == null or $n[.MATTHC] == .TENTTHC)),
	  full: ($r | map(select(has("TENTTHC"))) | length == 1998 and all(.[]; keys - ["ID",
		"MATTHC", "TENTTHC", "LOAITTHC", "TRANGTHAI", "MACOQUANCONGBO",
		"IDQUYETDINHCONGBO", "CAPTHUCHIEN", "LINHVUCTHUCHIEN", "COQUANTHUCHIEN",
		"DOITUONGTHUCHIEN", "TRINHTUTHUCHIEN", "CACHTHUCTHUCHIEN", "THANHPHANHOSO",
		"KETQUATHUCHIEN", "CANCUPHAPLY", "YEUCAU", "MOTADOITUONGTHUCHIEN"] == [] and
		(.ID | type) == "number")),
	  shape: all($r[]; (.THANHPHANHOSO | length) as $n | $n >= 1 and $n <= 3 and
		all(.THANHPHANHOSO[]; (.GIAYTO | length) >= 2 and (.GIAYTO | length) <= 6) and
		(.CACHTHUCTHUCHIEN | map(.THOIGIAN) | unique | length) == 1),
	  money_text: (($s | index("Không")) != null and ($s | index("Miễn phí")) != null and
		($s | index("0")) != null and any($s[]; test("^[0-9]{1,3}\\.000$")) and
		any($s[]; test("^[0-9]\\.[0-9]{3}\\.[0-9]{3}$")) and
		any($s[]; test("^[0-9.]+ đồng$")) and any($s[]; test("^[0-9.]+ đồng/hồ sơ$")) and
		any($s[]; test("^[0-9.]+ Đồng$"))),
	  money_int: (any($fees[].SOTIEN; type == "number") and
		($fees | map(.DONVI) | unique) == ["VNĐ", "Đồng"]),
	  time: (($t | index("0,5")) != null and any($t[]; strings | test("^0[1-9]$")) and
		any($t[]; strings | test("^[1-9][0-9]+$")) and any($t[]; numbers | . == floor) and
		any($t[]; numbers | . == 0.5)),
	  unit: ([$r[].CACHTHUCTHUCHIEN[0].THOIGIAN[0].DONVITINH] | unique ==
		[" Ngày làm việc ", "Giờ", "Ngày", "Ngày làm việc", "Tháng", "ngày làm việc"]),
	  names: (any($r[].TENTTHC | strings; nfd) and any($r[].TENTTHC | strings; spaced) and
		any($r[].THANHPHANHOSO[].GIAYTO[].TENGIAYTO; nfd) and
		any($r[].THANHPHANHOSO[].GIAYTO[].TENGIAYTO; spaced) and
		any($r[].THANHPHANHOSO[].TRUONGHOP; nfd) and
		any($r[].KETQUATHUCHIEN[].TENKETQUA; nfd) and any($fees[].MOTA; nfd)),
	  texts: (any($r[].THANHPHANHOSO[].GIAYTO[].SOBANCHINH; type == "string") and
		any($r[].THANHPHANHOSO[].GIAYTO[].SOBANSAO; type == "string") and
		any($r[].CACHTHUCTHUCHIEN[].KENH; . == "2") and
		([$r[].CAPTHUCHIEN[].CAPTHUCHIEN] | unique) == [0, 1, 2, 3]),
	  malformed: (($m | length) == 2 and ($m | map(strings) | length) == 1 and
		($m | map(objects) | .[0].CACHTHUCTHUCHIEN[0].THOIGIAN[0].PHILEPHI[0].SOTIEN) ==
		"abc" and ($d[0].malformed | length) == 2),
	  unmappable: ($d[0].unmappable as $u | [$r[] | select(.MATTHC as $c | $u | index([$c]))] |
		length == 2 and all(.[]; .COQUANTHUCHIEN == [{"MADONVI": "000.00.15.H31",
		"TENDONVI": "Sở Kế hoạch và Đầu tư"}]))
	}' "$T/results" >"$T/facts"
fact() { jqf "$T/facts" ".$1 == true"; }
check "LayThuTuc answers every procedure (2000 answers of one record)" fact answers
check "LayDanhSachTTHC spells each name as its LayThuTuc record does" fact list_names
check "a full record carries every field of INTERFACES.md §2" fact full
check "1-3 cases of 2-6 documents, fees identical across channels" fact shape
check "SOTIEN spelled Không, Miễn phí, 0, 8.000, 1.200.000 and with đồng, đồng/hồ sơ, Đồng" \
	fact money_text
check "SOTIEN sometimes an integer, DONVI Đồng or VNĐ" fact money_int
check "THOIGIANGIAIQUYET as \"15\", \"03\", \"0,5\", an integer and 0.5" fact time
check "DONVITINH in every spelling of the spec" fact unit
check "names sometimes decomposed (NFD) and padded with spaces" fact names
check "SOBANCHINH/SOBANSAO and KENH sometimes text, CAPTHUCHIEN 0..3 (2 on old records)" \
	fact texts
check "the malformed records: one without TENTTHC and with SOTIEN abc, one a string" \
	fact malformed
check "the unmappable records are executed by the retired 000.00.15.H31" fact unmappable
WD=$(jq -r '.withdrawn[0]' "$T/a.diff")
lay "$A" "$SA" "$WD" >"$T/body"
check "LayThuTuc still answers a withdrawn procedure, with TRANGTHAI 0" \
	jqf "$T/body" ".result[0].MATTHC == \"$WD\" and .result[0].TRANGTHAI == 0"
lay "$A" "$SA" 9.999999.000.00.00.H31 >"$T/body"
check "LayThuTuc of an unknown code: error_code 0, Không tìm thấy, result []" \
	jqf "$T/body" '. == {"error_code":0,"message":"Không tìm thấy","result":[]}'
share "$A" "$SA" LayThuTuc >"$T/body"
check "LayThuTuc without maTTHC: an error" jqf "$T/body" '.error_code == 400'
share "$A" "$SA" LayDanhMucCoQuan >"$T/body"
check "LayDanhMucCoQuan: the 17 agencies of spec §2 and the 104 communes as H31.<code>" \
	jqf "$T/body" '(.result | length) == 121 and
		(.result | map(select(.CAPDONVI == 3 and (.MADONVI | test("^H31\\.[0-9]{5}$")))) |
		 length) == 104 and any(.result[]; .MADONVI == "000.00.15.H31") and
		any(.result[]; . == {"MADONVI":"H31.11953","TENDONVI":"Phường Phố Hiến","CAPDONVI":3})'
share "$A" "$SA" LayDanhMucLinhVuc >"$T/body"
check "LayDanhMucLinhVuc: fields of work with codes and sectors" jqf "$T/body" \
	'(.result | length) >= 20 and all(.result[]; (.MALINHVUC | length) > 0 and
		(.TENLINHVUC | length) > 0 and (.MANGANH | length) > 0)'
curl -s -X POST -d "{\"session\":\"$SA\",\"service\":\"LayThuTuc\",\"maTTHC\":\"$WD\"}" \
	"$A/integration" >"$T/body"
check "the catalogue services are on the share endpoint only" jqf "$T/body" '.error_code == 404'

# ---- the provincial side ---------------------------------------------------
check "the provincial API without a token: 401" sh -c \
	"[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$A$API')\" = 401 ]"
code=$(pget "$A" "$API" wrong-token)
check "the provincial API with a wrong token: 401 with a JSON error" \
	sh -c "[ $code = 401 ] && jq -e '.error' '$T/body'"
check "paging covers every record exactly once, in code order, total consistent" jqs \
	"$T/a.prov" '(map(.data) | add) as $all | ($all | map(.maThuTuc)) as $c |
		($c | length) == 1993 and $c == ($c | sort | unique) and
		all(.[]; .total == 1993 and .size == 500) and (.[-1].data == [])'
jq -r '.data[].maThuTuc' "$T/a.prov" | sort >"$T/prov.codes"
jq -r '.missing[]' "$T/a.diff" | sort >"$T/missing"
jq -r '.unknown[]' "$T/a.diff" >"$T/unknown"
{ sort "$T/a.codes" | comm -23 - "$T/missing"; cat "$T/unknown"; } | sort >"$T/want.codes"
check "provincial = national minus missing, plus the provincial-only codes" \
	cmp -s "$T/prov.codes" "$T/want.codes"
code=$(pget "$A" "$API?page=0")
check "page 0: 400" [ "$code" = 400 ]
code=$(pget "$A" "$API?size=1001")
check "size over 1000: 400" [ "$code" = 400 ]

if command -v python3 >/dev/null 2>&1; then
	cat >"$T/refmap.py" <<'PY'
import json, re, sys, unicodedata
AG = {"000.00.%02d.H31" % i: c for i, c in enumerate(["UBND-TINH", "VP-UBND", "SNV", "STP",
      "STC", "SCT", "SNNMT", "SXD", "SGDDT", "SYT", "SVHTTDL", "SKHCN", "SDTTG", "TTRA",
      "CATINH"])}
AG["000.00.20.H31"] = "UBND-XA"
LEVEL = {0: "bo", 1: "tinh", 2: "huyen", 3: "xa"}
UNIT = {"ngày làm việc": "ngay_lam_viec", "ngày": "ngay", "giờ": "gio", "tháng": "thang"}
def clean(s): return unicodedata.normalize("NFC", s).strip(" ")
def money(v):
    if isinstance(v, int): return v
    t = clean(v)
    if t in ("Không", "Miễn phí"): return 0
    return int(re.match(r"^([0-9.]+)( đồng| Đồng| đồng/hồ sơ)?$", t).group(1).replace(".", ""))
def num(v):
    if not isinstance(v, str): return v
    f = float(v.strip().replace(",", "."))
    return int(f) if f == int(f) else f
def i(v): return v if isinstance(v, int) else int(v)
def mapit(r):
    ch = r["CACHTHUCTHUCHIEN"]; tb = ch[0]["THOIGIAN"][0]
    return {"maThuTuc": r["MATTHC"].strip(),
        "maQuocGia": ".".join(r["MATTHC"].strip().split(".")[:2]),
        "tenThuTuc": clean(r["TENTTHC"]),
        "capThucHien": sorted({LEVEL[c["CAPTHUCHIEN"]] for c in r["CAPTHUCHIEN"]}),
        "linhVuc": [x["MALINHVUC"] for x in r["LINHVUCTHUCHIEN"]],
        "coQuanThucHien": [AG[x["MADONVI"]] for x in r["COQUANTHUCHIEN"]],
        "kenhNop": sorted({i(c["KENH"]) for c in ch}),
        "thoiHanGiaiQuyet": {"giaTri": num(tb["THOIGIANGIAIQUYET"]),
                             "donVi": UNIT[clean(tb["DONVITINH"]).lower()]},
        "phiLePhi": [{"ma": f["MAPHILEPHI"], "soTien": money(f["SOTIEN"]),
                      "moTa": clean(f["MOTA"])} for f in tb["PHILEPHI"]],
        "thanhPhanHoSo": [{"truongHop": clean(c["TRUONGHOP"]), "giayTo": [{"ma": g["MAGIAYTO"],
            "ten": clean(g["TENGIAYTO"]), "soBanChinh": i(g["SOBANCHINH"]),
            "soBanSao": i(g["SOBANSAO"])} for g in c["GIAYTO"]]} for c in r["THANHPHANHOSO"]],
        "ketQua": [clean(k["TENKETQUA"]) for k in r["KETQUATHUCHIEN"]],
        "trangThai": "cong_bo"}
def values(path):
    dec, s, k, out = json.JSONDecoder(), open(path, encoding="utf-8").read(), 0, []
    while True:
        while k < len(s) and s[k].isspace(): k += 1
        if k >= len(s): return out
        o, k = dec.raw_decode(s, k); out.append(o)
nat, prov, diff = values(sys.argv[1]), values(sys.argv[2]), json.load(open(sys.argv[3]))
listed = {c for v in diff.values() for c in v}
provs = {r["maThuTuc"]: r for p in prov for r in p["data"]}
same = bad = 0
for a in nat:
    r = a["result"][0]
    if not isinstance(r, dict) or r["MATTHC"] in listed: continue
    want, got = mapit(r), provs.get(r["MATTHC"])
    if json.dumps(want, sort_keys=True) == json.dumps(got, sort_keys=True): same += 1
    else:
        bad += 1
        print("#   differs:", r["MATTHC"], json.dumps(want, ensure_ascii=False)[:300])
print("#   %d procedures map exactly to their provincial record, %d do not" % (same, bad))
sys.exit(0 if same == 1961 and bad == 0 else 1)
PY
	check "every procedure not listed as different maps (spec §3) exactly to its provincial record" \
		python3 "$T/refmap.py" "$T/a.nat" "$T/a.prov" "$T/a.diff"
else
	pass "# SKIP reference mapping: python3 not found"
fi

P1=$(jq -r '.data[0].maThuTuc' "$T/a.prov" | head -n 1)
code=$(pget "$A" "$API/$P1")
check "GET one record by code" sh -c "[ $code = 200 ] && jq -e '.maThuTuc == \"$P1\" and .trangThai == \"cong_bo\"' '$T/body'"
code=$(pget "$A" "$API/9.999999.000.00.00.H31")
check "GET an unknown code: 404" [ "$code" = 404 ]
code=$(pput "$A" "$P1" '{"maThuTuc":"1.000000.000.00.00.H31","tenThuTuc":"x"}')
check "PUT whose maThuTuc differs from the path: 400 with an error" \
	sh -c "[ $code = 400 ] && jq -e '.error' '$T/body'"
code=$(pput "$A" "$P1" '["not","an","object"]')
check "PUT of a body that is not an object: 400" [ "$code" = 400 ]
code=$(pput "$A" "$P1" 'not json')
check "PUT of a body that is not JSON: 400" [ "$code" = 400 ]
check "refused PUTs store and count nothing" sh -c \
	"[ \"\$(curl -s '$A/_sim/provincial/puts')\" = '{\"total\":0,\"by_code\":{}}' ]"
MISS=$(jq -r '.missing[0]' "$T/a.diff")
curl -s "$A/_sim/catalog/expected?code=$MISS" >"$T/expected"
code=$(pput "$A" "$MISS" "$(cat "$T/expected")")
check "PUT of a missing procedure: 200 {ok, maThuTuc}" sh -c \
	"[ $code = 200 ] && jq -e '. == {\"ok\":true,\"maThuTuc\":\"$MISS\"}' '$T/body'"
pget "$A" "$API/$MISS" >/dev/null
check "GET returns what was PUT" jq -e -n --slurpfile a "$T/body" --slurpfile b "$T/expected" \
	'$a[0] == $b[0] and ($b[0].maThuTuc | length) > 0'
curl -s "$A/_sim/provincial/puts" >"$T/body"
check "/_sim/provincial/puts counts the PUT by code" \
	jqf "$T/body" ". == {\"total\":1,\"by_code\":{\"$MISS\":1}}"
curl -s "$A/_sim/catalog/differences" >"$T/body"
check "the delivered procedure is no longer missing" \
	jqf "$T/body" "(.missing | length) == 9 and (.missing | index([\"$MISS\"])) == null"

# ---- run-time changes --------------------------------------------------------
# Procedures with no seeded difference and a plainly spelled name (NFC, no
# spaces around), and the answers of the first before any change.
jq -r '.result[] | select((.TENTTHC | explode | all(.[]; . < 768 or . > 803)) and
	(.TENTTHC | test("^ | $") | not)) | .MATTHC' "$T/a.list" | sort >"$T/listed"
jq -r '[.[][]] | .[]' "$T/a.diff" | sort >"$T/special"
set -- $(comm -23 "$T/listed" "$T/special" | sed -n '10p;20p;30p;40p;50p')
X1=$1 X2=$2 X3=$3 X4=$4 X5=$5
lay "$A" "$SA" "$X1" >"$T/x1.before"
pget "$A" "$API/$X1" >/dev/null
cp "$T/body" "$T/x1.prov.before"

cat_op "$A" "{\"op\":\"change\",\"code\":\"$X1\"}" >"$T/body"
check "change: answered ok" jqf "$T/body" ".ok == true and .code == \"$X1\""
lay "$A" "$SA" "$X1" >"$T/x1.after"
check "change: LayThuTuc differs (name + (sửa đổi), first fee + 1.000 đ)" jq -e -n \
	--slurpfile a "$T/x1.before" --slurpfile b "$T/x1.after" \
	'$a[0] != $b[0] and ($b[0].result[0].TENTTHC | test("\\(sửa đổi\\) *$")) and
	 ($a[0].result[0].TENTTHC | test("sửa đổi") | not)'
pget "$A" "$API/$X1" >/dev/null
check "change: the provincial copy does not change" cmp -s "$T/body" "$T/x1.prov.before"
curl -s "$A/_sim/catalog/expected?code=$X1" >"$T/expected"
check "change: the expected mapping has the fee + 1000" jq -e -n \
	--slurpfile p "$T/x1.prov.before" --slurpfile e "$T/expected" \
	'$e[0].phiLePhi[0].soTien == $p[0].phiLePhi[0].soTien + 1000 and
	 ($e[0].tenThuTuc | endswith(" (sửa đổi)"))'
curl -s "$A/_sim/catalog/differences" >"$T/body"
check "change: the procedure is listed as a fee difference" \
	jqf "$T/body" "(.fee | index([\"$X1\"])) != null"

cat_op "$A" '{"op":"add","count":3}' >"$T/added"
check "add: answers 3 new codes" jqf "$T/added" '.ok == true and (.codes | length) == 3'
ADD1=$(jq -r '.codes[0]' "$T/added")
share "$A" "$SA" LayDanhSachTTHC >"$T/body"
check "add: the new procedures are listed, still in code order" jq -e -n \
	--slurpfile l "$T/body" --slurpfile a "$T/added" \
	'($l[0].result | map(.MATTHC)) as $c | ($c | length) == 1999 and $c == ($c | sort) and
	 all($a[0].codes[]; . as $x | $c | index([$x]) != null)'
lay "$A" "$SA" "$ADD1" >"$T/body"
check "add: LayThuTuc answers a new procedure" jqf "$T/body" ".result[0].MATTHC == \"$ADD1\""
curl -s "$A/_sim/catalog/differences" >"$T/body"
check "add: the new procedures are missing provincially" jq -e -n \
	--slurpfile d "$T/body" --slurpfile a "$T/added" \
	'all($a[0].codes[]; . as $x | $d[0].missing | index([$x]) != null)'

cat_op "$A" "{\"op\":\"withdraw\",\"code\":\"$X2\"}" >/dev/null
share "$A" "$SA" LayDanhSachTTHC >"$T/body"
check "withdraw: no longer listed" jqf "$T/body" \
	"(.result | length) == 1998 and (.result | map(.MATTHC) | index([\"$X2\"])) == null"
lay "$A" "$SA" "$X2" >"$T/body"
check "withdraw: LayThuTuc answers it with TRANGTHAI 0" jqf "$T/body" '.result[0].TRANGTHAI == 0'
curl -s "$A/_sim/catalog/differences" >"$T/body"
check "withdraw: listed as withdrawn (present provincially)" \
	jqf "$T/body" "(.withdrawn | index([\"$X2\"])) != null"
cat_op "$A" "{\"op\":\"reinstate\",\"code\":\"$X2\"}" >/dev/null
share "$A" "$SA" LayDanhSachTTHC >"$T/body"
check "reinstate: listed again" jqf "$T/body" "(.result | map(.MATTHC) | index([\"$X2\"])) != null"
lay "$A" "$SA" "$X2" >"$T/body"
check "reinstate: TRANGTHAI 1" jqf "$T/body" '.result[0].TRANGTHAI == 1'

cat_op "$A" "{\"op\":\"malform\",\"code\":\"$X3\"}" >/dev/null
lay "$A" "$SA" "$X3" >"$T/body"
check "malform: LayThuTuc answers a record without TENTTHC and with SOTIEN abc" jqf "$T/body" \
	'(.result[0] | has("TENTTHC") | not) and
	 .result[0].CACHTHUCTHUCHIEN[0].THOIGIAN[0].PHILEPHI[0].SOTIEN == "abc"'
curl -s "$A/_sim/catalog/differences" >"$T/body"
check "malform: listed as malformed" jqf "$T/body" "(.malformed | index([\"$X3\"])) != null"

cat_op "$A" '{"op":"empty_list","on":true}' >/dev/null
share "$A" "$SA" LayDanhSachTTHC >"$T/body"
check "empty_list on: LayDanhSachTTHC answers result []" jqf "$T/body" '.error_code == 0 and .result == []'
cat_op "$A" '{"op":"empty_list","on":false}' >/dev/null
share "$A" "$SA" LayDanhSachTTHC >"$T/body"
check "empty_list off: the list is back" jqf "$T/body" '(.result | length) == 1999'

ctl_post "$A" "{\"op\":\"edit\",\"code\":\"$X4\",\"set\":{\"tenThuTuc\":\"Tên khác\"}}" \
	/_sim/provincial >/dev/null
pget "$A" "$API/$X4" >/dev/null
check "provincial edit: merges the field into the stored record" \
	jqf "$T/body" ".tenThuTuc == \"Tên khác\" and .maThuTuc == \"$X4\""
ctl_post "$A" "{\"op\":\"delete\",\"code\":\"$X5\"}" /_sim/provincial >/dev/null
code=$(pget "$A" "$API/$X5")
check "provincial delete: the record is gone (404)" [ "$code" = 404 ]
curl -s "$A/_sim/catalog/differences" >"$T/body"
check "edit and delete: listed as other and missing" jqf "$T/body" \
	"(.other == [\"$X4\"]) and (.missing | index([\"$X5\"])) != null"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{"op":"change","code":"9.9"}' \
	"$A/_sim/catalog")
check "an op on an unknown code: 404" [ "$code" = 404 ]
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{"op":"explode"}' "$A/_sim/catalog")
check "an unknown op: 400" [ "$code" = 400 ]

curl -s -X POST "$A/_sim/reset" >/dev/null
curl -s "$A/_sim/catalog" >"$T/body"
check "POST /_sim/reset does not reset the catalogue" jqf "$T/body" '.procedures == 2003'

cat_op "$A" '{"op":"reseed"}' >"$T/body"
check "reseed: answered ok" jqf "$T/body" '.ok == true'
snapshot "$A" "$SA" r
check "reseed: LayDanhSachTTHC as at start" cmp -s "$T/a.list" "$T/r.list"
check "reseed: every LayThuTuc answer as at start" cmp -s "$T/a.nat" "$T/r.nat"
check "reseed: the provincial catalogue as at start" cmp -s "$T/a.prov" "$T/r.prov"
check "reseed: the differences as at start" cmp -s "$T/a.diff" "$T/r.diff"
check "reseed: no PUT counted" sh -c \
	"[ \"\$(curl -s '$A/_sim/provincial/puts')\" = '{\"total\":0,\"by_code\":{}}' ]"

# ---- faults on the new services and routes ----------------------------------
SIM_URL=$A # for sim_is
sim_faults_at() { curl -s -X POST -d "$2" "$1/_sim/faults" >/dev/null; }
status_of() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
sim_faults_at "$A" '{"service":"LayThuTuc","error_rate":1}'
code=$(status_of -X POST -d "{\"session\":\"$SA\",\"service\":\"LayThuTuc\",\"maTTHC\":\"$X1\"}" "$A/share")
code2=$(status_of -X POST -d "{\"session\":\"$SA\",\"service\":\"LayDanhSachTTHC\"}" "$A/share")
check "a fault scoped to LayThuTuc: 500 for it, 200 for LayDanhSachTTHC" \
	[ "$code $code2" = "500 200" ]
check "the stats count LayThuTuc's 500 under its service name" \
	sim_is '.by_service.LayThuTuc.status["500"] == 1'
sim_faults_at "$A" '{"reset":true}'
sim_faults_at "$A" '{"service":"LayThuTuc","wrap_message":true}'
lay "$A" "$SA" "$X1" >"$T/body"
check "wrap_message on LayThuTuc: the pre-rendered answer wrapped as a string in message" \
	jq -e -n --slurpfile w "$T/body" --slurpfile r "$T/r.nat" \
	"(\$w[0].message | fromjson) as \$a | \$a.result[0].MATTHC == \"$X1\" and
	 any(\$r[]; . == \$a)"
sim_faults_at "$A" '{"reset":true}'
sim_faults_at "$A" "{\"path\":\"$API\",\"error_rate\":1}"
code=$(status_of -H "Authorization: Bearer $TOKEN" "$A$API?page=1&size=10")
check "a fault scoped to the path $API: the list answers 500" [ "$code" = 500 ]
sim_faults_at "$A" '{"reset":true}'
curl -s "$A/_sim/catalog/expected?code=$MISS" >"$T/expected.miss"
sim_faults_at "$A" '{"service":"provincial.thu-tuc.put","error_rate":1}'
code=$(pput "$A" "$MISS" "$(cat "$T/expected.miss")")
code2=$(pget "$A" "$API/$X1")
check "a fault scoped to provincial.thu-tuc.put: PUT 500, GET 200" [ "$code $code2" = "500 200" ]
check "a faulted PUT stores nothing" sh -c \
	"[ \"\$(curl -s '$A/_sim/provincial/puts')\" = '{\"total\":0,\"by_code\":{}}' ]"
check "the stats count the provincial routes by name" \
	sim_is '.by_service["provincial.thu-tuc.put"].status["500"] == 1 and
		.by_service["provincial.thu-tuc.list"].count >= 1 and
		.by_path["/provincial/api/v1/thu-tuc"].count >= 1'
sim_faults_at "$A" '{"reset":true}'

# ---- determinism ---------------------------------------------------------------
check "same seed: every LayThuTuc answer byte-identical across two simulators" \
	sh -c "[ -s '$T/a.nat' ] && cmp -s '$T/a.nat' '$T/b.nat'"
check "same seed: identical list, provincial pages and differences" sh -c \
	"cmp -s '$T/a.list' '$T/b.list' && cmp -s '$T/a.prov' '$T/b.prov' && cmp -s '$T/a.diff' '$T/b.diff'"
check "another seed: other records and other seeded differences" sh -c \
	"! cmp -s '$T/a.nat' '$T/c.nat' && ! cmp -s '$T/a.diff' '$T/c.diff' &&
	 jq -e 'map_values(length) | .missing == 10 and .fee == 6' '$T/c.diff' >/dev/null"

# ---- a small catalogue, and a clean stop ------------------------------------------
check "SIGTERM: simulator B exits 0 without a sanitizer report" stop_sim "$B_PID"
check "SIGTERM: simulator C exits 0 without a sanitizer report" stop_sim "$C_PID"
EXTRA_PIDS=$A_PID
SIM_PID=""
sim_start --procedures 100 --seed 3 || fail "small simulator did not start"
curl -s "$SIM_URL/_sim/catalog/differences" >"$T/body"
check "N=100: one procedure of each seeded difference" jqf "$T/body" \
	'map_values(length) == {"missing":1,"unknown":1,"withdrawn":1,"fee":1,"time_limit":1,
		"channel":1,"documents":1,"agency":1,"unmappable":1,"malformed":1,"other":0}'
check "SIGTERM: the small simulator exits 0" stop_sim "$SIM_PID"
SIM_PID=""
check "SIGTERM: simulator A exits 0 without a sanitizer report" stop_sim "$A_PID"
EXTRA_PIDS=""
finish
