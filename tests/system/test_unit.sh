#!/bin/sh
# test_unit.sh: keeps systemd/lienthong.service loadable and hardened.
#
# systemd-analyze verify checks that the unit parses, that its directives are
# known to this systemd and that ExecStart= names an executable; the unit's
# ExecStart= names the installed /usr/local/sbin/lienthongd, so a temporary
# copy points it at $BUILD/lienthongd instead. systemd-analyze security
# --offline=true then scores the sandbox; the exposure must stay at or below
# 2.0. A few checks guard what the score cannot see: settings that would
# lower the exposure but stop the daemon from working (no network, no IP
# sockets), the literal ExecStart= path that "make install" rewrites, one
# comment per directive block, the man pages named by Documentation=, and
# that lienthong.sysusers and lienthong.tmpfiles are accepted by their tools.
#
# Environment: BUILD (default "build") holds the built lienthongd.
# Output: TAP lines "ok - ..." / "not ok - ..."; exit status 1 on failure.
# Skipped as a whole only when systemd-analyze is not installed.
set -eu

BUILD=${BUILD:-build}
case $BUILD in
/*) ;;
*) BUILD=$(pwd)/$BUILD ;;
esac
top=$(cd "$(dirname "$0")/../.." && pwd)
unit_src=$top/systemd/lienthong.service
sysusers_src=$top/systemd/lienthong.sysusers
tmpfiles_src=$top/systemd/lienthong.tmpfiles
installed_exe=/usr/local/sbin/lienthongd
max_exposure=2.0

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "ok - # SKIP systemd-analyze not available"
	exit 0
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_unit.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

n=0
failed=0
pass() {
	n=$((n + 1))
	echo "ok - $*"
}
fail() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok - $*"
}
skip() {
	n=$((n + 1))
	echo "ok - # SKIP $*"
}
# diag FILE: shows a command's output under a failed check.
diag() {
	sed 's/^/#   /' "$1"
}

# Colours and the pager would only get in the way of parsing.
SYSTEMD_COLORS=0
SYSTEMD_PAGER=
export SYSTEMD_COLORS SYSTEMD_PAGER

# ---- the unit as shipped ------------------------------------------------

# "make install" rewrites this literal prefix; a different or second
# ExecStart= would escape the rewrite and start the wrong binary.
execs=$(grep -c '^ExecStart=' "$unit_src" || true)
if [ "$execs" = 1 ] && grep -q "^ExecStart=$installed_exe " "$unit_src"; then
	pass "unit has one ExecStart= naming $installed_exe (the path install rewrites)"
else
	fail "unit has one ExecStart= naming $installed_exe (the path install rewrites)"
	grep -n '^ExecStart=' "$unit_src" | sed 's/^/#   /' || true
fi

# Settings that would lower the exposure figure but leave a daemon that
# cannot reach any national system or cannot be supervised.
bad=
if grep -Eq '^PrivateNetwork=(yes|true|on|1)[[:space:]]*$' "$unit_src"; then
	bad="$bad PrivateNetwork=yes"
fi
fams=$(sed -n 's/^RestrictAddressFamilies=//p' "$unit_src")
for fam in AF_UNIX AF_INET AF_INET6; do
	case " $fams " in
	*" $fam "*) ;;
	*) bad="$bad no-$fam" ;;
	esac
done
case $fams in
"~"*) bad="$bad RestrictAddressFamilies-is-a-deny-list" ;;
esac
grep -q '^Type=notify$' "$unit_src" || bad="$bad no-Type=notify"
grep -q '^WatchdogSec=' "$unit_src" || bad="$bad no-WatchdogSec"
grep -q '^User=lienthong$' "$unit_src" || bad="$bad no-User=lienthong"
if [ -z "$bad" ]; then
	pass "unit keeps what the daemon needs (network, AF_UNIX/AF_INET/AF_INET6, notify, watchdog, user)"
else
	fail "unit keeps what the daemon needs:$bad"
fi

# Every directive block starts under a comment saying why: a directive right
# after a blank line or a section header has none.
awk '
	/^[[:space:]]*$/ || /^\[/ { prev = "gap"; next }
	/^#/ { prev = "comment"; next }
	{ if (prev == "gap") printf "%d: %s\n", NR, $0; prev = "directive" }
' "$unit_src" >"$tmp/uncommented"
if [ -s "$tmp/uncommented" ]; then
	fail "every directive in the unit has a comment saying why"
	diag "$tmp/uncommented"
else
	pass "every directive in the unit has a comment saying why"
fi

# Documentation= must point at pages the project ships (docs/man, installed
# by make install); verify below runs with --man=no because the test machine
# has them not installed.
pages=$(sed -n 's/^Documentation=//p' "$unit_src" | tr ' ' '\n' | sed -n 's/^man:\([^()]*\)(\([0-9a-z]*\))$/\1.\2/p')
missing=
for p in $pages; do
	[ -f "$top/docs/man/$p" ] || missing="$missing docs/man/$p"
done
if [ -z "$pages" ]; then
	fail "Documentation= names man pages"
elif [ -z "$missing" ]; then
	pass "man pages named by Documentation= exist in docs/man ($(echo "$pages" | tr '\n' ' ' | sed 's/ $//'))"
else
	fail "man pages named by Documentation= exist in docs/man: missing$missing"
fi

# ---- systemd-analyze verify ---------------------------------------------

# The copy keeps the name lienthong.service: the unit name comes from it.
exe=$BUILD/lienthongd
sed "s|^ExecStart=$installed_exe |ExecStart=$exe |" "$unit_src" >"$tmp/lienthong.service"
if [ ! -x "$exe" ]; then
	fail "$exe exists (build it first: verify checks the executable)"
fi

rc=0
systemd-analyze verify --man=no "$tmp/lienthong.service" >"$tmp/verify" 2>&1 || rc=$?
# Only what concerns this unit counts: the unit name, the temporary path and
# the binary all contain "lienthong". Other units of the host that verify
# happens to load may warn about themselves; those are shown, not counted.
grep -i 'lienthong' "$tmp/verify" >"$tmp/verify.ours" || true
if [ -s "$tmp/verify.ours" ]; then
	fail "systemd-analyze verify reports nothing about lienthong.service (exit $rc)"
	diag "$tmp/verify.ours"
else
	pass "systemd-analyze verify reports nothing about lienthong.service"
	if [ -s "$tmp/verify" ]; then
		echo "# ignored, about other units (verify exit $rc):"
		diag "$tmp/verify"
	fi
fi

# ---- systemd-analyze security -------------------------------------------

rc=0
systemd-analyze security --offline=true "$tmp/lienthong.service" >"$tmp/security" 2>&1 || rc=$?
figure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9][0-9]*\.[0-9]\).*/\1/p' "$tmp/security" | head -n 1)
if [ -z "$figure" ]; then
	fail "systemd-analyze security prints an overall exposure level (exit $rc)"
	diag "$tmp/security"
else
	# One decimal both sides: compare tenths as integers (sh has no floats).
	got=$(echo "$figure" | sed 's/\.//; s/^0*\([0-9]\)/\1/')
	lim=$(echo "$max_exposure" | sed 's/\.//; s/^0*\([0-9]\)/\1/')
	if [ "$got" -le "$lim" ]; then
		pass "exposure $figure <= $max_exposure (systemd-analyze security --offline=true)"
	else
		fail "exposure $figure <= $max_exposure (systemd-analyze security --offline=true)"
		grep '✗' "$tmp/security" | sed 's/^/#   /' || true
	fi
fi

# ---- sysusers.d and tmpfiles.d ------------------------------------------

root=$tmp/root
mkdir -p "$root/etc/lienthong"
: >"$root/etc/lienthong/lienthong.conf"

if ! command -v systemd-sysusers >/dev/null 2>&1; then
	skip "systemd-sysusers not available"
else
	rc=0
	systemd-sysusers --root="$root" "$sysusers_src" >"$tmp/sysusers" 2>&1 || rc=$?
	# The account the unit runs as is the one sysusers creates, as a login-less
	# system user with a matching group.
	line=$(grep '^lienthong:' "$root/etc/passwd" 2>/dev/null || true)
	uid=$(echo "$line" | cut -d: -f3)
	shell=$(echo "$line" | cut -d: -f7)
	if [ "$rc" = 0 ] && [ -n "$uid" ] && [ "$uid" -gt 0 ] && [ "$uid" -lt 1000 ] &&
		[ "${shell##*/}" = nologin ] && grep -q '^lienthong:' "$root/etc/group"; then
		pass "lienthong.sysusers creates the system user and group lienthong (uid $uid, nologin)"
	else
		fail "lienthong.sysusers creates the system user and group lienthong (exit $rc)"
		diag "$tmp/sysusers"
		echo "#   passwd: $line"
	fi
fi

if ! command -v systemd-tmpfiles >/dev/null 2>&1; then
	skip "systemd-tmpfiles not available"
elif [ "$(id -u)" = 0 ] && [ -n "${uid:-}" ]; then
	rc=0
	systemd-tmpfiles --root="$root" --create "$tmpfiles_src" >"$tmp/tmpfiles" 2>&1 || rc=$?
	gid=$(grep '^lienthong:' "$root/etc/group" | cut -d: -f3)
	conf=$(stat -c '%a %u %g' "$root/etc/lienthong/lienthong.conf")
	cred=$(stat -c '%a %u %g' "$root/etc/lienthong/credentials" 2>/dev/null || echo missing)
	if [ "$rc" = 0 ] && [ "$conf" = "640 0 $gid" ] && [ "$cred" = "700 0 0" ]; then
		pass "lienthong.tmpfiles makes the config root:lienthong 0640 and credentials/ root 0700"
	else
		fail "lienthong.tmpfiles makes the config root:lienthong 0640 and credentials/ root 0700 (exit $rc)"
		diag "$tmp/tmpfiles"
		echo "#   lienthong.conf: $conf (want 640 0 $gid), credentials: $cred (want 700 0 0)"
	fi
else
	# Not root: ownership cannot be applied, but every line must parse; the
	# only complaints allowed are the refused chowns.
	rc=0
	systemd-tmpfiles --root="$root" --create "$tmpfiles_src" >"$tmp/tmpfiles" 2>&1 || rc=$?
	grep -v 'Operation not permitted' "$tmp/tmpfiles" >"$tmp/tmpfiles.other" || true
	if [ ! -s "$tmp/tmpfiles.other" ] && [ -d "$root/etc/lienthong/credentials" ]; then
		pass "lienthong.tmpfiles parses (not root: ownership not checked)"
	else
		fail "lienthong.tmpfiles parses (exit $rc)"
		diag "$tmp/tmpfiles"
	fi
fi

echo "1..$n"
if [ "$failed" -gt 0 ]; then
	echo "# $failed of $n checks failed"
	exit 1
fi
exit 0
