#!/bin/sh
# gen-unit-table.sh: writes the code table mappings/unit.json, the unit that
# receives a dossier (the provincial change feed's hoSo.donViXuLy) -> the
# national agency id the portal knows it by (DonViXuLy, and madonvi of the
# adapter calls), so that the table can be regenerated, never edited.
#
#   tools/gen-unit-table.sh mappings/agency.json \
#       hung-yen-commune-conversion-2025.csv > mappings/unit.json
#
# Departments: the code table agency.json (national id -> provincial code,
# catalog-spec §2) reversed, with its validity dates and notes, so that the
# two tables cannot disagree. Read with jq.
#
# Communes, from the official old -> new conversion of Hưng Yên (the CSV that
# tools/gen-commune-table.sh reads: a "# source: ..." line, a header line,
# then rows: new province, new commune name, new commune code, old commune
# name, old commune code, note, old district, old province):
#   - each of the 104 new communes "UBND-<new code>" -> "H31.<new code>"
#     from 2025-07-01;
#   - each old commune "UBND-<old code>" -> "H31.<its new code>", the agency
#     that took its dossiers over, until 2025-06-30 (a dossier received
#     before the reform is looked up at its own date, so its old unit still
#     maps);
#   - an old commune split between several new ones ("Nhập một phần") has no
#     single agency: its entry lists the candidates under "ambiguous".
# A new commune often keeps the code of one of its predecessors, so a code
# may appear twice, with dates that do not overlap. One entry per line:
# departments in agency.json's order, then communes in the CSV's order.
set -eu

if [ $# -ne 2 ] || [ ! -r "$1" ] || [ ! -r "$2" ]; then
	echo "usage: $0 agency.json CONVERSION.csv > unit.json" >&2
	exit 2
fi
agency=$1
csv=$2
command -v jq >/dev/null 2>&1 || {
	echo "$0: jq is needed to read $agency" >&2
	exit 1
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

# Departments: one entry per line, no trailing comma yet.
jq -r '
	if (.kind != "codes" or (.entries | type) != "array") then
		error("not a code table")
	else . end
	| .entries[]
	| if ((.to | type) != "string" or .ambiguous != null) then
		error("entry \(.from): the reverse table needs one text value")
	  else . end
	| "    {\"from\": \(.to | tojson), \"to\": \(.from | tojson)"
	  + (if .valid_from then ", \"valid_from\": \(.valid_from | tojson)" else "" end)
	  + (if .valid_to then ", \"valid_to\": \(.valid_to | tojson)" else "" end)
	  + (if .note then ", \"note\": \(.note | tojson)" else "" end)
	  + "}"
' "$agency" >"$tmp/departments"
n_dept=$(wc -l <"$tmp/departments")

base=$(basename "$csv")
LC_ALL=C awk -F, -v base="$base" -v out="$tmp" '
function esc(s,    r, i, c) {
	r = ""
	for (i = 1; i <= length(s); i++) {
		c = substr(s, i, 1)
		if (c == "\\" || c == "\"")
			r = r "\\" c
		else if (c == "\t")
			r = r " "
		else
			r = r c
	}
	return r
}
function code5(s) { return s ~ /^[0-9][0-9][0-9][0-9][0-9]$/ }
function die(msg) { printf "%s:%d: %s\n", base, NR, msg > "/dev/stderr"; failed = 1; exit 1 }
{ sub(/\r$/, "") }
NR == 1 && /^#/ {
	source = $0
	sub(/^# *(source: *)?/, "", source)
	next
}
/^#/ || /^[ \t]*$/ { next }
!header { header = 1; next }
{
	if (NF < 8) die("expected 8 columns, got " NF)
	newname = $2; newcode = $3; oldname = $4; oldcode = $5; how = $6
	dist = $7; prov = $8
	if (!code5(newcode) || !code5(oldcode)) die("a commune code is 5 digits")
	if (!(newcode in newname_of)) {
		newname_of[newcode] = newname
		new_order[++n_new] = newcode
	} else if (newname_of[newcode] != newname) {
		die("new code " newcode " has two names")
	}
	if (!(oldcode in cands)) {
		old_order[++n_old] = oldcode
		cands[oldcode] = newcode
		n_cands[oldcode] = 1
		cand_names[oldcode] = newname
		old_desc[oldcode] = oldname " (" dist ", " prov ")"
		old_how[oldcode] = how
	} else if (index(", " cands[oldcode] ",", ", " newcode ",") == 0) {
		cands[oldcode] = cands[oldcode] ", " newcode
		cand_names[oldcode] = cand_names[oldcode] ", " newname
		n_cands[oldcode]++
	}
	rows++
}
END {
	if (failed) exit 1
	if (!rows) { print base ": no rows" > "/dev/stderr"; exit 1 }
	f = out "/communes"
	for (i = 1; i <= n_old; i++) {
		c = old_order[i]
		if (n_cands[c] > 1) {
			list = "H31." cands[c]
			gsub(/, /, "\", \"H31.", list)
			printf "    {\"from\": \"UBND-%s\", \"ambiguous\": [\"%s\"], \"valid_to\": \"2025-06-30\", \"note\": \"UBND %s split (%s) between %s\"}\n", c, list, esc(old_desc[c]), esc(old_how[c]), esc(cand_names[c]) > f
		} else {
			printf "    {\"from\": \"UBND-%s\", \"to\": \"H31.%s\", \"valid_to\": \"2025-06-30\", \"note\": \"UBND %s -> UBND %s (%s)\"}\n", c, cands[c], esc(old_desc[c]), esc(cand_names[c]), esc(old_how[c]) > f
		}
	}
	for (i = 1; i <= n_new; i++) {
		c = new_order[i]
		printf "    {\"from\": \"UBND-%s\", \"to\": \"H31.%s\", \"valid_from\": \"2025-07-01\", \"note\": \"UBND %s\"}\n", c, c, esc(newname_of[c]) > f
	}
	close(f)
	printf "%d %d %d\n", n_old, n_new, rows > (out "/counts")
	printf "%s\n", esc(source) > (out "/source")
}
' "$csv"
read -r n_old n_new rows <"$tmp/counts"
source=$(cat "$tmp/source")
agency_base=$(basename "$agency")

cat <<EOF
{
  "lienthong_mapping": 1,
  "name": "unit",
  "kind": "codes",
  "description": "Receiving unit of a dossier: the provincial unit code (hoSo.donViXuLy of the change feed) -> the national agency id (DonViXuLy). Departments (${n_dept}): ${agency_base} reversed. Communes: each of the ${n_new} new communes UBND-<code> -> H31.<code> from 2025-07-01; each of the ${n_old} old communes UBND-<old code> -> the agency of its new commune, until 2025-06-30 (dossier maps judge it at the dossier's own date, so a dossier received before the reform keeps mapping); an old commune split between new ones (Nhập một phần) has no single agency: its entry lists the candidates as ambiguous. Generated by tools/gen-unit-table.sh from ${agency_base} and ${base} (${rows} rows); regenerate it, do not edit by hand.",
  "source": "departments: catalog-spec.md section 2 (via ${agency_base}); communes: ${source}",
  "normalize": ["trim"],
  "entries": [
EOF
cat "$tmp/departments" "$tmp/communes" | sed '$!s/$/,/'
cat <<EOF
  ]
}
EOF
