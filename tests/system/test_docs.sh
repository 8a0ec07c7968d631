#!/bin/sh
# The documentation keeps up with the code: every key of etc/lienthong.conf
# (the option tables) is an entry of lienthong.conf(5), every command of
# lienthongctl --help (the command table) an entry of lienthongctl(1), every
# long option of lienthongd --help is in lienthongd(8) and every --flag of
# lienthong-sim --help in lienthong-sim(1); each man page renders without a
# groff warning; the pages named by Documentation= in the unit exist.
#
# The tree checked is the one this script sits in, the binaries those of
# $BUILD, so a broken copy of the tree can be checked with the same script.
. "$(dirname "$0")/lib.sh"

# sort and comm must agree on the order.
LC_ALL=C
export LC_ALL
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MAN=$ROOT/docs/man
CONF=$ROOT/etc/lienthong.conf
UNIT=$ROOT/systemd/lienthong.service

# entries FILE: the terms of the .TP entries of a man page source, one per
# line: the first word of the line after .TP when it is set in bold (.B,
# .BR, .BI or \fB), with roff's \- read as -.
entries() {
	sed 's/\\-/-/g' "$1" | awk '
		/^\.TP/ { want = 1; next }
		want {
			want = 0
			line = $0
			if (line ~ /^\.B[RI]? /) sub(/^\.B[RI]? +/, "", line)
			else if (line ~ /^\\fB/) sub(/^\\fB/, "", line)
			else next
			gsub(/"/, "", line)
			sub(/[^A-Za-z0-9_.:\/-].*$/, "", line)
			if (line != "") print line
		}' | sort -u
}

# mentions FILE WORD: WORD (e.g. --config) occurs in the man page source as
# a whole word, with roff's \- read as -.
mentions() {
	sed 's/\\-/-/g' "$1" | grep -Eq -- "(^|[^A-Za-z0-9_-])$2([^A-Za-z0-9_-]|\$)"
}

# missing_from LIST_FILE SET_FILE: the lines of LIST_FILE not in SET_FILE.
missing_from() {
	sort -u "$1" | comm -23 - "$2"
}

# report DESC LIST_FILE MISSING_FILE WHAT: ok when the list is not empty
# and nothing is missing.
report() {
	n=$(wc -l <"$2")
	if [ "$n" -eq 0 ]; then
		fail "$1: no $4 found (is the source of the list broken?)"
	elif [ -s "$3" ]; then
		fail "$1: $(wc -l <"$3") of $n $4 missing"
		sed 's/^/#   missing: /' "$3"
	else
		pass "$1 ($n $4)"
	fi
}

for page in lienthongd.8 lienthong.conf.5 lienthongctl.1 lienthong-sim.1; do
	check "docs/man/$page exists" test -s "$MAN/$page"
done

# ---- configuration keys ------------------------------------------------
# Key lines are "#key = value" (or uncommented) after a [section] or
# #[connector.x] header; "# text" comment lines have a space after #.
# Printed as "SECTION KEY".
awk '
	/^#?\[[a-z][a-z0-9_.]*\]/ { sec = $0; sub(/^#?\[/, "", sec); sub(/\].*/, "", sec); next }
	sec != "" && /^#?[a-z][a-z0-9_]* *=/ {
		key = $0; sub(/^#/, "", key); sub(/ *=.*/, "", key); print sec, key
	}' "$CONF" >"$T/section_keys"
cut -d' ' -f2 "$T/section_keys" | sort -u >"$T/keys"
entries "$MAN/lienthong.conf.5" >"$T/conf_entries" 2>/dev/null
missing_from "$T/keys" "$T/conf_entries" >"$T/keys_missing"
report "every key of etc/lienthong.conf is an entry of lienthong.conf(5)" \
	"$T/keys" "$T/keys_missing" keys

# The fixed sections have a part of their own in the page (.SH "[daemon]"),
# so a key shared by two of them ([store] path, [control] path) must be an
# entry of each part.
for sec in daemon store control; do
	awk -v s="$sec" '$1 == s { print $2 }' "$T/section_keys" | sort -u >"$T/sec_keys"
	awk -v h=".SH \"[$sec]\"" '
		$0 == h { on = 1; print; next }
		/^\.SH/ { on = 0 }
		on' "$MAN/lienthong.conf.5" 2>/dev/null >"$T/sec_page"
	entries "$T/sec_page" >"$T/sec_entries"
	missing_from "$T/sec_keys" "$T/sec_entries" >"$T/sec_missing"
	report "every key of [$sec] is an entry of the [$sec] part of lienthong.conf(5)" \
		"$T/sec_keys" "$T/sec_missing" keys
done

# ---- lienthongctl commands --------------------------------------------
"$BIN/lienthongctl" --help 2>/dev/null |
	awk '/^Commands:/ { on = 1; next } on && /^[ \t]*$/ { exit } on { print $1 }' |
	sort -u >"$T/commands"
entries "$MAN/lienthongctl.1" >"$T/ctl_entries" 2>/dev/null
missing_from "$T/commands" "$T/ctl_entries" >"$T/commands_missing"
report "every command of lienthongctl --help is an entry of lienthongctl(1)" \
	"$T/commands" "$T/commands_missing" commands

# ---- long options -------------------------------------------------------
# options_check DESC HELP_FILE PAGE: every --option of HELP_FILE is
# mentioned in PAGE.
options_check() {
	grep -o -- '--[a-z][a-z0-9-]*' "$2" | sort -u >"$T/opts"
	: >"$T/opts_missing"
	while read -r opt; do
		mentions "$3" "$opt" 2>/dev/null || echo "$opt" >>"$T/opts_missing"
	done <"$T/opts"
	report "$1" "$T/opts" "$T/opts_missing" options
}

"$BIN/lienthongd" --help >"$T/d_help" 2>/dev/null
options_check "every long option of lienthongd --help is in lienthongd(8)" \
	"$T/d_help" "$MAN/lienthongd.8"

"$BIN/lienthong-sim" --help >"$T/sim_help" 2>/dev/null
options_check "every --flag of lienthong-sim --help is in lienthong-sim(1)" \
	"$T/sim_help" "$MAN/lienthong-sim.1"

# ---- rendering ----------------------------------------------------------
if command -v groff >/dev/null 2>&1; then
	for page in lienthongd.8 lienthong.conf.5 lienthongctl.1 lienthong-sim.1; do
		if [ ! -f "$MAN/$page" ]; then
			fail "$page renders without warnings: no such file"
			continue
		fi
		if groff -man -Tutf8 -ww -z "$MAN/$page" >"$T/groff.out" 2>"$T/groff.err" &&
			[ ! -s "$T/groff.err" ]; then
			pass "$page renders without warnings (groff -man -ww)"
		else
			fail "$page renders without warnings (groff -man -ww)"
			head -20 "$T/groff.err" | sed 's/^/#   /'
		fi
	done
else
	pass "man pages render without warnings # SKIP groff is not installed"
fi

# ---- the unit's Documentation= -----------------------------------------
grep '^Documentation=' "$UNIT" 2>/dev/null | sed 's/^Documentation=//' | tr ' ' '\n' |
	sed -n 's/^man:\([^()]*\)(\([0-9a-z]*\))$/\1.\2/p' | sort -u >"$T/doc_pages"
: >"$T/doc_missing"
while read -r page; do
	[ -s "$MAN/$page" ] || echo "docs/man/$page" >>"$T/doc_missing"
done <"$T/doc_pages"
report "the man pages named by Documentation= in lienthong.service exist" \
	"$T/doc_pages" "$T/doc_missing" pages

finish
