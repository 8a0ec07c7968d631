# lib.sh: shared by the system tests (sourced, POSIX sh). Starts the real
# binaries from $BUILD in a temporary directory and cleans up on exit.
#
#   . tests/system/lib.sh
#   sim_start [ARGS...]        -> $SIM_URL, $SIM_PID
#   daemon_start CONF          -> $D_PID (waits for the control socket)
#   check "what" command...    -> prints ok/not ok
#   finish                     -> exit status
set -u
BUILD=${BUILD:-build}
BIN=$(cd "$BUILD" && pwd)
T=$(mktemp -d /tmp/lt-test.XXXXXX)
SIM_PID=""
D_PID=""
NOTIFY_PID=""
n_ok=0
n_bad=0

cleanup() {
	for p in $D_PID $SIM_PID $NOTIFY_PID; do
		kill -TERM "$p" 2>/dev/null
	done
	for p in $D_PID $SIM_PID $NOTIFY_PID; do
		wait "$p" 2>/dev/null
	done
	if [ "$n_bad" -ne 0 ] || [ "${KEEP:-}" = 1 ]; then
		echo "# kept $T for inspection"
		for f in "$T"/*.log; do
			[ -f "$f" ] || continue
			echo "# ---- $f (last 30 lines)"
			tail -30 "$f" | sed 's/^/# /'
		done
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

pass() { n_ok=$((n_ok + 1)); echo "ok - $*"; }
fail() { n_bad=$((n_bad + 1)); echo "not ok - $*"; }
# check DESCRIPTION CMD...: runs CMD, ok when it exits 0.
check() {
	d=$1
	shift
	if "$@" >"$T/check.out" 2>&1; then pass "$d"; else fail "$d"; sed 's/^/#   /' "$T/check.out" | head -20; fi
}
finish() {
	echo "1..$((n_ok + n_bad))"
	[ "$n_bad" -eq 0 ]
}

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
# has WHAT FILE TEXT: ok when FILE has the fixed string TEXT.
has() {
	if grep -qF -- "$3" "$2"; then pass "$1"; else
		fail "$1 (no '$3')"
		sed 's/^/#   /' "$2" | head -20
	fi
}
# wait_until SECONDS CMD...: polls CMD every 0.1 s until it succeeds.
wait_until() {
	limit=$(($1 * 10))
	shift
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -ge "$limit" ] && return 1
		sleep 0.1
	done
	return 0
}

sim_start() {
	rm -f "$T/sim.port"
	"$BIN/lienthong-sim" --listen 127.0.0.1:0 --port-file "$T/sim.port" --seed 7 "$@" \
		>>"$T/sim.log" 2>&1 &
	SIM_PID=$!
	wait_until 10 test -s "$T/sim.port" || { echo "# simulator did not start"; return 1; }
	SIM_URL="http://127.0.0.1:$(cat "$T/sim.port")"
}

sim_faults() { curl -s -X POST -d "$1" "$SIM_URL/_sim/faults" >/dev/null; }
sim_stat() { curl -s "$SIM_URL/_sim/stats${2:-}" | jq -r "$1"; }

notify_start() {
	"$BIN/tests/helpers/notify_recv" "$T/notify.sock" "$T/notify.out" &
	NOTIFY_PID=$!
	wait_until 5 test -S "$T/notify.sock"
}

# daemon_start CONF [ENV=VALUE...]: starts lienthongd, waits for its socket.
daemon_start() {
	conf=$1
	shift
	env "$@" "$BIN/lienthongd" --config "$conf" >>"$T/daemon.log" 2>&1 &
	D_PID=$!
	# write_base_conf puts the control socket at $T/ctl.sock.
	wait_until 10 test -S "$T/ctl.sock" || { echo "# daemon did not start"; return 1; }
}

# daemon_stop: SIGTERM, wait, sets $D_RC and $D_SECS.
daemon_stop() {
	t0=$(date +%s%N)
	kill -TERM "$D_PID"
	wait "$D_PID"
	D_RC=$?
	D_MS=$((($(date +%s%N) - t0) / 1000000))
	D_PID=""
}

ctl() { "$BIN/lienthongctl" --socket "$T/ctl.sock" "$@"; }
ctl_json() { "$BIN/lienthongctl" --socket "$T/ctl.sock" --json "$@"; }

# json_is CMD EXPR: true when lienthongctl --json CMD answers and jq EXPR
# holds. (jq -e alone is true on empty input, so the answer is checked.)
json_is() {
	# shellcheck disable=SC2086 # CMD is "command arg..." split on purpose
	_out=$(ctl_json $1) || return 1
	[ -n "$_out" ] || return 1
	printf '%s\n' "$_out" | jq -e "$2" >/dev/null
}
status_is() { json_is status "$1"; }
# sim_json PATH EXPR: GET PATH from the simulator; jq EXPR holds.
sim_json() {
	_out=$(curl -sf "$SIM_URL$1") || return 1
	[ -n "$_out" ] || return 1
	printf '%s\n' "$_out" | jq -e "$2" >/dev/null
}
# sim_is EXPR [QUERY]: the same for the simulator's /_sim/stats.
sim_is() {
	_out=$(curl -sf "$SIM_URL/_sim/stats${2:-}") || return 1
	printf '%s\n' "$_out" | jq -e "$1" >/dev/null
}

secret_file() { # NAME VALUE -> path of a 0600 file
	printf '%s\n' "$2" >"$T/$1"
	chmod 600 "$T/$1"
	echo "$T/$1"
}

# write_base_conf FILE: [daemon] [store] [control] for a test daemon.
write_base_conf() {
	cat >"$1" <<CONF
[daemon]
log_target = stderr
log_level = debug
plugin_dir = $T/plugins
health_interval = 1s

[store]
path = $T/state/lienthong.db

[control]
path = $T/ctl.sock
CONF
}

# relay_conf FILE [ADAPTER_LINES] [FLOW_LINES]: appends the standard test
# pipeline to FILE: a drop folder $T/inbox (files connector "inbox") ->
# flow "relay" -> adapter connector "national" calling Echo on the
# simulator (sim_start first). The extra lines (newline-separated
# "key = value") go into the adapter and the flow sections.
relay_conf() {
	mkdir -p "$T/inbox"
	[ -f "$T/adapter.pw" ] || secret_file adapter.pw secret >/dev/null
	cat >>"$1" <<CONF

[connector.inbox]
type = files
in_dir = $T/inbox
min_age = 0

[connector.national]
type = adapter
url = $SIM_URL
username = lienthong
password = $T/adapter.pw
push_service = Echo
${2:-}

[flow.relay]
source = inbox
sink = national
${3:-}
CONF
}

# pipeline_setup FILE: the simulator's secrets (adapter password, provincial
# token) as 0600 files, and [daemon] mappings_dir = the tree's mappings/.
pipeline_setup() {
	[ -f "$T/adapter.pw" ] || secret_file adapter.pw secret >/dev/null
	[ -f "$T/province.token" ] || secret_file province.token provincial-secret-token >/dev/null
	grep -q '^mappings_dir' "$1" ||
		sed -i "s|^health_interval = 1s|health_interval = 1s\nmappings_dir = $(pwd)/mappings|" "$1"
}

# catalog_conf FILE [FLOW_LINES] [CSDL_LINES]: appends the procedures
# pipeline: csdl connector "national" and provincial connector "province" on
# the simulator (sim_start first), flow "catalog", mappings from the tree.
catalog_conf() {
	pipeline_setup "$1"
	cat >>"$1" <<CONF

[connector.national]
type = csdl
url = $SIM_URL
username = lienthong
password = $T/adapter.pw
madonvi = 000.00.00.H31
backoff_base = 50ms
max_attempts = 3
${3:-}

[connector.province]
type = provincial
url = $SIM_URL/provincial
token = $T/province.token
page_size = 100

[flow.catalog]
source = national
target = province
${2:-}
CONF
}

# dossier_conf FILE [FLOW_LINES] [DVCQG_LINES] [PROVINCIAL_LINES]: appends
# the dossier pipeline: the provincial change feed (connector "province") ->
# flow "dossier" -> the national portal behind the adapter (dvcqg connector
# "portal"), both on the simulator (sim_start first), mappings from the tree.
dossier_conf() {
	pipeline_setup "$1"
	cat >>"$1" <<CONF

[connector.province]
type = provincial
url = $SIM_URL/provincial
token = $T/province.token
${4:-}

[connector.portal]
type = dvcqg
url = $SIM_URL
username = lienthong
password = $T/adapter.pw
madonvi = 000.00.00.H31
backoff_base = 50ms
max_attempts = 3
${3:-}

[flow.dossier]
source = province
target = portal
interval = 1s
run_at_start = true
poll = 200ms
retry_min = 200ms
${2:-}
CONF
}

# feed_fetch FILE JQ_PROJECTION: brings FILE up to date with the simulator's
# provincial change feed: every change (projected by the jq expression), one
# a line, in seq order. The feed is a log: only what is new since the cursor
# kept in FILE.cursor is read; a missing FILE starts from the beginning.
feed_fetch() {
	[ -f "$1" ] || { : >"$1"; rm -f "$1.cursor"; }
	_fc=$(cat "$1.cursor" 2>/dev/null)
	_fi=0
	while [ "$_fi" -lt 1000 ]; do
		curl -sf -H "Authorization: Bearer provincial-secret-token" \
			"$SIM_URL/provincial/api/v1/ho-so/thay-doi?limit=1000&cursor=$_fc" >"$T/page" ||
			return 1
		# one parse of the page: its items, then a line {"next", "more"}
		jq -c "(.items | arrays | .[] | $2), {next: .next_cursor, more: .has_more}" \
			"$T/page" >"$T/part" || return 1
		tail -n 1 "$T/part" >"$T/meta"
		jq -e '.next | strings' "$T/meta" >/dev/null || return 1
		sed '$d' "$T/part" >>"$1"
		_fc=$(jq -r .next "$T/meta")
		printf '%s\n' "$_fc" >"$1.cursor"
		[ "$(jq -r .more "$T/meta")" = true ] || return 0
		_fi=$((_fi + 1))
	done
	return 1
}
