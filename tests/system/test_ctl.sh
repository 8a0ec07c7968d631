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
has "--help lists command options" "$T/out" "mismatches [--kind KIND]"
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

# ---- command options (from the usage in ctl_commands) ------------------------
expect "mismatches --kind x is accepted" 0 ctl mismatches --kind x
has "an empty answer says nothing matches" "$T/out" "no mismatches match"
expect "mismatches --kind=x is accepted" 0 ctl mismatches --kind=x
has "--kind=x answers the same" "$T/out" "no mismatches match"
expect "every option of mismatches is accepted" 0 ctl mismatches --kind 'catalog.*' \
	--state open --since 2025-01-01 --agency STP --dossier H31.1 --key 1.001193 --limit 5
expect "--json mismatches answers JSON" 0 ctl --json mismatches --kind=catalog.fee
check "with the list and the counts" sh -c '[ -s "$1" ] && jq -e ".mismatches == [] and (.counts | has(\"open\"))" "$1"' - "$T/out"
expect "an option value reaches the daemon as its argument (--state bogus: 1)" 1 \
	ctl mismatches --state bogus
has "the daemon names the bad state" "$T/err" "state 'bogus'"
expect "so does --state=bogus" 1 ctl mismatches --state=bogus
has "the daemon names the bad state (=)" "$T/err" "state 'bogus'"
expect "an unknown option of a command is a usage error (2)" 2 ctl mismatches --no-such x
has "the error names the option" "$T/err" "--no-such"
has "the error shows the usage" "$T/err" "usage: lienthongctl mismatches [--kind KIND]"
expect "an option without its value is a usage error (2)" 2 ctl mismatches --kind
has "the error says the value is missing" "$T/err" "--kind needs a value"
expect "an empty option value is a usage error (2)" 2 ctl mismatches --kind=
expect "an option given twice is a usage error (2)" 2 ctl mismatches --kind a --kind b
expect "a positional argument mismatches does not take is a usage error (2)" 2 ctl mismatches x
expect "a global option after the command is a usage error (2)" 2 ctl mismatches --json
has "the error says where global options go" "$T/err" "before the command"
expect "an option of a command that has none is a usage error (2)" 2 ctl status --kind x
expect "options are parsed before the daemon is asked (unreachable: 3)" 3 \
	"$BIN/lienthongctl" --socket "$T/nothing.sock" mismatches --kind x
expect "and a usage error wins over an unreachable daemon (2)" 2 \
	"$BIN/lienthongctl" --socket "$T/nothing.sock" mismatches --kind
expect "-- ends the options: run -- --x asks for a flow named --x (1)" 1 ctl run -- --x
has "the daemon names the flow --x" "$T/err" "no flow named '--x'"
expect "an optional positional argument is accepted (run FLOW MODE)" 1 ctl run no-such-flow full
expect "a missing required argument is a usage error (2)" 2 ctl procedure
expect "too many arguments are a usage error (2)" 2 ctl mismatch 1 2
expect "an unknown procedure fails (1)" 1 ctl procedure 1.999999.000.00.00.H31
expect "an unknown mismatch fails (1)" 1 ctl mismatch 999999

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
