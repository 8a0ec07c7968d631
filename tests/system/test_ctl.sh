#!/bin/sh
# lienthongctl against the real lienthongd: readable status, --json for
# scripts, metrics, version, reload (accepted and rejected), the exit codes
# scripts rely on (0 ok, 1 failed, 2 usage, 3 unreachable), and the socket's
# permission model: a member of the socket's group (nobody in nogroup) may
# read but not change, a user outside it cannot connect at all.
set -eu
. "$(dirname "$0")/lib.sh"
# lib.sh's cleanup must run to its end even when a command in it fails.
trap 'set +e; cleanup' EXIT

sock="$T/ctl.sock"
conf="$T/lienthong.conf"
chmod 0755 "$T" # nobody must reach the socket inside
cat >"$conf" <<CONF
[daemon]
log_level = info
log_target = stderr

[store]
path = $T/state.db

[control]
path = $sock
mode = 0660
group = nogroup
CONF

"$BIN/lienthongd" --config "$conf" >>"$T/daemon.log" 2>&1 &
D_PID=$!
if ! wait_until 10 test -S "$sock"; then
	fail "lienthongd starts and creates its control socket"
	set +e
	finish
	exit 1
fi
pass "lienthongd starts and creates its control socket"

ctl() { "$BIN/lienthongctl" --socket "$sock" "$@"; }
# as_nobody CMD...: runs CMD as uid/gid 65534 (nobody/nogroup), no other groups.
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
# rc CMD...: prints the exit status of CMD (output to $T/out, $T/err).
rc() {
	if "$@" >"$T/out" 2>"$T/err"; then echo 0; else echo $?; fi
}
# expect WHAT WANT CMD...: ok when CMD exits with status WANT.
expect() {
	what=$1 want=$2
	shift 2
	got=$(rc "$@")
	if [ "$got" = "$want" ]; then
		pass "$what"
	else
		fail "$what (exit $got, want $want)"
		sed 's/^/#   /' "$T/out" "$T/err" | head -20
	fi
}
# has WHAT FILE PATTERN: ok when FILE has a line matching the fixed string.
has() {
	if grep -qF -- "$3" "$2"; then pass "$1"; else
		fail "$1 (no '$3')"
		sed 's/^/#   /' "$2" | head -20
	fi
}

check "the socket has mode 0660 and group nogroup" \
	test "$(stat -c '%a %G' "$sock")" = "660 nogroup"

# ---- reading --------------------------------------------------------------
expect "status exits 0" 0 ctl status
has "status prints the header with the version" "$T/out" "lienthongd "
has "status prints the config file" "$T/out" "$conf"
has "status prints the store" "$T/out" "store:"

expect "--json status exits 0" 0 ctl --json status
v=$(jq -r .version "$T/out" 2>/dev/null || true)
check "--json status has .version ($v)" test -n "$v" -a "$v" != null
check "--json status has the config path" sh -c '[ -s "$1" ] && jq -e --arg c "$2" ".config.path == \$c" "$1"' - "$T/out" "$conf"

expect "metrics exits 0" 0 ctl metrics
has "metrics has lienthong_up 1" "$T/out" "lienthong_up 1"
has "metrics has the HELP/TYPE lines" "$T/out" "# TYPE lienthong_up gauge"

expect "version exits 0" 0 ctl version
has "version names the daemon's version" "$T/out" "lienthongd $v"
expect "--version needs no daemon" 0 "$BIN/lienthongctl" --version
expect "--help needs no daemon" 0 "$BIN/lienthongctl" --help
has "--help lists the commands with their arguments" "$T/out" "pause FLOW"
expect "LIENTHONG_SOCKET chooses the socket" 0 env LIENTHONG_SOCKET="$sock" \
	"$BIN/lienthongctl" version

# ---- changing -------------------------------------------------------------
expect "reload of a valid configuration exits 0" 0 ctl reload
has "reload says the configuration was reloaded" "$T/out" "configuration reloaded"
ctl metrics >"$T/metrics" 2>&1 || true
has "the accepted reload is counted" "$T/metrics" 'lienthong_config_reloads_total{result="ok"} 1'

cp "$conf" "$T/good.conf"
printf 'no_such_key = 1\n' >>"$conf" # lands in [control], the last section
expect "reload of an invalid configuration exits 1" 1 ctl reload
has "the rejection says the old configuration keeps running" "$T/err" "still running the previous one"
has "the rejection lists the errors" "$T/err" "no_such_key"
cp "$T/good.conf" "$conf"
expect "status still works after a rejected reload" 0 ctl status

expect "run of an unknown flow exits 1" 1 ctl run no-such-flow
has "the error names the flow" "$T/err" "no-such-flow"

# ---- exit codes -----------------------------------------------------------
expect "an unreachable socket exits 3" 3 "$BIN/lienthongctl" --socket "$T/nothing.sock" status
has "the error suggests the daemon is not running" "$T/err" "is lienthongd running?"
expect "an unknown command is sent and fails with 1" 1 ctl no-such-command a b
has "the daemon points to help" "$T/err" "help"
expect "a missing argument is a usage error (2)" 2 ctl pause
expect "an unknown option is a usage error (2)" 2 ctl --no-such-option status

# ---- permissions ----------------------------------------------------------
expect "a member of the socket's group may read status" 0 as_nobody \
	"$BIN/lienthongctl" --socket "$sock" status
expect "a member of the socket's group may not reload (exit 1)" 1 as_nobody \
	"$BIN/lienthongctl" --socket "$sock" reload
has "the refusal is EPERM" "$T/err" "EPERM"
has "the refusal says who may" "$T/err" "needs root or the service user"
expect "pause is refused to the group member too" 1 as_nobody \
	"$BIN/lienthongctl" --socket "$sock" pause anything
expect "a user outside the socket's group cannot connect (exit 3)" 3 \
	setpriv --reuid=65534 --regid=1 --clear-groups "$BIN/lienthongctl" --socket "$sock" status
has "the error says permission denied" "$T/err" "Permission denied"

check "lienthongd is still running" kill -0 "$D_PID"

set +e
finish
