# commune-conversion.awk: reads the official old -> new commune conversion
# of Hưng Yên (CSV, 8 columns: #, new name, new code, old name, old code,
# how, district, province; a "# source: ..." first line; a header row) for
# tools/gen-commune-table.sh and tools/gen-unit-table.sh, which add their own
# END rule. Run with -F, and -v base=FILE-NAME (for messages). Leaves:
#   source; rows; n_new, new_order[i], newname_of[code];
#   n_old, old_order[i], cands[old] ("new1, new2"), n_cands[old],
#   cand_names[old], old_desc[old], old_how[old]; failed; esc(s) for JSON.
function esc(s,    out, i, c) {
	out = ""
	for (i = 1; i <= length(s); i++) {
		c = substr(s, i, 1)
		if (c == "\\" || c == "\"")
			out = out "\\" c
		else if (c == "\t")
			out = out " "
		else
			out = out c
	}
	return out
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
