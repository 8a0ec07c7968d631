#!/bin/sh
# System test of lienthong-sim, the peer of every other system test and
# benchmark: the adapter envelope (login, sessions, services, loose
# answers), each fault kind scoped to one service, the OAuth2 gateway mode,
# determinism for a seed, and a clean shutdown on SIGTERM.
#
# Usage: BUILD=build sh tests/system/test_sim.sh   (needs curl and jq)
# Prints "ok - ..." / "not ok - ..." per check; exits 1 if any failed.
set -eu

BUILD=${BUILD:-build}
SIM=$BUILD/lienthong-sim
T=$(mktemp -d "${TMPDIR:-/tmp}/test_sim.XXXXXX")
PASS=0
FAIL=0
SIM_PID=
BASE=
DST=H40
# The simulator is on loopback: never through a proxy from the environment.
no_proxy=127.0.0.1,localhost
NO_PROXY=$no_proxy
export no_proxy NO_PROXY

cleanup() {
	if [ -n "$SIM_PID" ]; then
		kill "$SIM_PID" 2>/dev/null || true
		wait "$SIM_PID" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { echo "ok - $1"; PASS=$((PASS + 1)); }
nok() {
	echo "not ok - $1"
	FAIL=$((FAIL + 1))
	if [ -s "$T/body" ]; then echo "#   last body: $(head -c 300 "$T/body")"; fi
}
# check DESCRIPTION COMMAND...: ok when the command succeeds.
check() {
	d=$1
	shift
	if "$@" >/dev/null 2>&1; then ok "$d"; else nok "$d"; fi
}
# jqb EXPR: the last body satisfies the jq expression.
# (jq -e is true on empty input, so an empty body fails first.)
jqb() { [ -s "$T/body" ] && jq -e "$1" "$T/body" >/dev/null 2>&1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# start_sim NAME ARGS...: starts the simulator on a free port, waits for
# its port file, sets SIM_PID and BASE.
start_sim() {
	name=$1
	shift
	rm -f "$T/$name.port"
	"$SIM" --listen 127.0.0.1:0 --port-file "$T/$name.port" "$@" \
		>"$T/$name.out" 2>"$T/$name.err" &
	SIM_PID=$!
	i=0
	while [ ! -s "$T/$name.port" ]; do
		i=$((i + 1))
		if [ $i -gt 200 ] || ! kill -0 "$SIM_PID" 2>/dev/null; then
			echo "not ok - $name: simulator did not start"
			cat "$T/$name.err" >&2
			exit 1
		fi
		sleep 0.025
	done
	BASE=http://127.0.0.1:$(cat "$T/$name.port")
	# The ready line follows the port file closely; give it a moment.
	i=0
	while ! grep -q "listening on" "$T/$name.out" && [ $i -lt 40 ]; do
		i=$((i + 1))
		sleep 0.025
	done
}

# stop_sim: SIGTERM; STOP_STATUS is the exit status, or 99 when the log
# holds a sanitizer report (ASan/UBSan builds) or an error line.
stop_sim() {
	kill -TERM "$SIM_PID"
	STOP_STATUS=0
	wait "$SIM_PID" || STOP_STATUS=$?
	SIM_PID=
	if grep -q -e 'Sanitizer' -e 'runtime error' -e ': error: ' "$T/$name.err"; then
		sed 's/^/#   /' "$T/$name.err" | head -40
		STOP_STATUS=99
	fi
}

# post PATH BODY [CURL ARGS...]: prints the HTTP status; body in $T/body,
# headers in $T/hdr. 000 when no answer.
post() {
	p=$1
	b=$2
	shift 2
	curl -s -o "$T/body" -D "$T/hdr" -w '%{http_code}' -H 'Content-Type: application/json' \
		"$@" --data-binary "$b" "$BASE$p" || true
}
get() { curl -s -o "$T/body" -D "$T/hdr" -w '%{http_code}' "$BASE$1" || true; }
faults() { post /_sim/faults "$1" >/dev/null; }
# call SERVICE [EXTRA JSON MEMBERS] [CURL ARGS...]: an adapter call with the session.
call() {
	s=$1
	x=${2:-}
	[ $# -ge 2 ] && shift 2 || shift 1
	post /integration "{\"session\":\"$SESSION\",\"madonvi\":\"000.00.00.H40\",\"service\":\"$s\"$x}" "$@"
}
login() {
	post /auth '{"username":"lienthong","password":"secret"}' -H "dstcode: $DST" >/dev/null
	SESSION=$(jq -r '.session // empty' "$T/body")
}

[ -x "$SIM" ] || { echo "not ok - $SIM not built"; exit 1; }

# ---- adapter envelope ---------------------------------------------------
start_sim main --dstcode "$DST" --max-body 1M --seed 7
check "ready line names the bound port" \
	grep -qx "lienthong-sim listening on 127.0.0.1:$(cat "$T/main.port")" "$T/main.out"
check "GET /health answers ok" sh -c "[ \"\$(curl -s $BASE/health)\" = ok ]"

code=$(post /auth '{"username":"lienthong","password":"secret"}' -H "dstcode: $DST")
SESSION=$(jq -r '.session // empty' "$T/body")
check "login with the right credentials gives a session" \
	sh -c "[ $code = 200 ] && [ -n '$SESSION' ] && [ -s $T/body ] && jq -e '.error_code == 0' $T/body"
code=$(post /auth '{"username":"lienthong","password":"wrong"}' -H "dstcode: $DST")
check "wrong password: HTTP 200 with error_code 401" \
	sh -c "[ $code = 200 ] && [ -s $T/body ] && jq -e '.error_code == 401 and (.session == null)' $T/body"
code=$(post /auth '{"username":"lienthong","password":"secret"}')
check "login without the dstcode header is refused" \
	sh -c "[ $code = 200 ] && [ -s $T/body ] && jq -e '.error_code == 401' $T/body"

code=$(call Ping)
check "Ping with a session: pong and a yyyyMMddHHmmss time" sh -c "[ $code = 200 ] &&
	[ -s $T/body ] && jq -e '.error_code == 0 and .result[0].pong == true and (.result[0].time | test(\"^[0-9]{14}\$\"))' $T/body"
code=$(post /integration '{"madonvi":"x","service":"Ping"}')
check "missing session: error_code \"-1\" as a string" \
	sh -c "[ $code = 200 ] && [ -s $T/body ] && jq -e '.error_code == \"-1\" and .result == null' $T/body"
code=$(post /share "{\"session\":\"$SESSION\",\"service\":\"KhongCo\"}")
check "unknown service: error_code 404 naming it" \
	sh -c "[ $code = 200 ] && [ -s $T/body ] && jq -e '.error_code == 404 and (.message | contains(\"KhongCo\"))' $T/body"
code=$(post /integration 'this is not json')
check "body not JSON: HTTP 400 with a JSON error" sh -c "[ $code = 400 ] && [ -s $T/body ] && jq -e '.error' $T/body"
head -c 1100000 /dev/zero | tr '\0' 'a' >"$T/big"
code=$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$T/big" "$BASE/integration" || true)
check "body over --max-body: HTTP 413" [ "$code" = 413 ]

OLD=$SESSION
post /_sim/expire-sessions '{}' >/dev/null
SESSION=$OLD
call Ping >/dev/null
check "expire-sessions: the old session gets \"-1\"" jqb '.error_code == "-1"'
login
call Ping >/dev/null
check "after expire-sessions a new login works" jqb '.error_code == 0'

faults '{"session_ttl_s":1}'
sleep 1.1
call Ping >/dev/null
check "a session older than session_ttl_s expires" jqb '.error_code == "-1"'
faults '{"reset":true}'
login

post /_sim/reset '{}' >/dev/null
call Echo ',"data":[{"ma":"1","ten":"Hồ sơ một"},{"ma":"2"}]' >/dev/null
check "Echo answers its records with error_code \"00\"" \
	jqb '.error_code == "00" and (.result | length) == 2 and .result[0].ten == "Hồ sơ một"'
call Echo ',"data":[{"ma":"3"}]' >/dev/null
get '/_sim/stats?service=Echo' >/dev/null
check "stats?service=Echo lists the received records in order" \
	jqb '[.received[].ma] == ["1","2","3"] and .received_count == 3'
check "stats count requests per service, path and status" \
	jqb '.by_service.Echo.count == 2 and .by_service.Echo.status."200" == 2 and .by_path."/integration".count == 2 and (.requests | length) == 2 and .requests[0].fault == null'

faults '{"wrap_message":true}'
call Ping >/dev/null
check "wrap_message: the answer is a JSON string inside message" \
	jqb '(.message | fromjson | .error_code) == 0'
faults '{"reset":true}'

# ---- faults, each scoped to Ping (Echo must stay healthy) -------------------
faults '{"service":"Ping","error_rate":1.0}'
code=$(call Ping)
check "error_rate 1.0 on Ping: HTTP 500 with a JSON error" sh -c "[ $code = 500 ] && [ -s $T/body ] && jq -e '.error' $T/body"
code=$(call Echo ',"data":[]')
check "a fault scoped to Ping leaves Echo alone" [ "$code" = 200 ]

faults '{"reset":true,"service":"Ping","rate_limit_rate":1,"retry_after_s":7}'
code=$(call Ping)
check "rate_limit_rate 1: HTTP 429 with Retry-After: 7" \
	sh -c "[ $code = 429 ] && grep -qi '^Retry-After: 7' $T/hdr"

faults '{"reset":true,"service":"Ping","latency_ms":300}'
t0=$(now_ms)
code=$(call Ping)
t1=$(now_ms)
check "latency_ms 300: the answer takes at least 300 ms" sh -c "[ $code = 200 ] && [ $((t1 - t0)) -ge 300 ]"
t0=$(now_ms)
i=0
pids=
while [ $i -lt 24 ]; do
	curl -s -o /dev/null -H 'Content-Type: application/json' \
		--data-binary "{\"session\":\"$SESSION\",\"service\":\"Ping\"}" "$BASE/integration" &
	pids="$pids $!"
	i=$((i + 1))
done
code=$(call Echo ',"data":[]')
t2=$(now_ms)
for j in $pids; do wait "$j" || true; done
t1=$(now_ms)
check "24 delayed requests do not hold the 4 workers (Echo answers at once)" \
	sh -c "[ $code = 200 ] && [ $((t2 - t0)) -lt 250 ] && [ $((t1 - t0)) -lt 1500 ]"

faults '{"reset":true,"service":"Ping","malformed_rate":1}'
code=$(call Ping)
check "malformed (1st): HTTP 200 with an HTML page" \
	sh -c "[ $code = 200 ] && grep -qi '^Content-Type: text/html' $T/hdr && grep -q '502 Bad Gateway' $T/body"
code=$(call Ping)
check "malformed (2nd): HTTP 200 with truncated JSON" sh -c "[ $code = 200 ] && ! jq . $T/body"

faults '{"reset":true,"service":"Ping","fail_next":2}'
c1=$(call Ping)
c2=$(call Ping)
c3=$(call Ping)
check "fail_next 2: two 503 then 200" [ "$c1 $c2 $c3" = "503 503 200" ]

faults '{"reset":true,"service":"Ping","down":true}'
code=$(call Ping)
check "down: Ping gets 503" [ "$code" = 503 ]
code=$(get /_sim/stats)
check "down: /_sim/stats is never faulted" [ "$code" = 200 ]

faults '{"reset":true,"service":"Ping","hang_rate":1,"hang_ms":300}'
t0=$(now_ms)
code=$(call Ping "" --max-time 3)
t1=$(now_ms)
check "hang (hang_ms 300): no answer, connection closed after 300 ms" \
	sh -c "[ $code = 000 ] && [ $((t1 - t0)) -ge 300 ] && [ $((t1 - t0)) -lt 2500 ]"
faults '{"reset":true,"service":"Ping","hang_rate":1,"hang_ms":600000}'
code=$(call Ping "" --max-time 0.3)
i=0
while :; do
	get '/_sim/stats?service=Ping' >/dev/null
	if jqb '.requests[-1].fault == "hang" and .requests[-1].status == 0' || [ $i -ge 40 ]; then break; fi
	i=$((i + 1))
	sleep 0.05
done
check "hang: curl --max-time gives up, the sim frees the request at once" \
	sh -c "[ $code = 000 ] && [ -s $T/body ] && jq -e '.requests[-1].fault == \"hang\" and .requests[-1].status == 0' $T/body"
check "fault counters in the stats" \
	jqb '.faults == {"error":1,"rate_limited":1,"hang":2,"malformed":2,"fail_next":2,"down":1}'

faults '{"reset":true}'
get /_sim/faults >/dev/null
check "faults reset: no scopes, global set without faults" \
	jqb '.services == {} and .paths == {} and .global.error_rate == 0 and .global.down == false'
code=$(post /_sim/faults '{"error_rate":2}')
check "a bad fault value is refused with 400" [ "$code" = 400 ]

stop_sim
check "SIGTERM: clean exit with status 0" [ "$STOP_STATUS" = 0 ]

# ---- shutdown with parked requests ----------------------------------------
start_sim park --latency-ms 30000
faults '{"path":"/share","hang_rate":1}'
pids=
i=0
while [ $i -lt 8 ]; do
	curl -s -o /dev/null --max-time 10 -d '{}' "$BASE/integration" &
	pids="$pids $!"
	curl -s -o /dev/null --max-time 10 -d '{}' "$BASE/share" &
	pids="$pids $!"
	i=$((i + 1))
done
i=0
while [ $i -lt 100 ]; do
	get /_sim/stats >/dev/null
	[ "$(jq '.faults.hang' "$T/body")" = 8 ] && break
	i=$((i + 1))
	sleep 0.02
done
sleep 0.1
t0=$(now_ms)
stop_sim
t1=$(now_ms)
for j in $pids; do wait "$j" || true; done
check "SIGTERM with 16 delayed and hung requests: clean exit at once" \
	sh -c "[ $STOP_STATUS = 0 ] && [ $((t1 - t0)) -lt 2000 ]"

# ---- determinism --------------------------------------------------------
pattern() {
	start_sim det --seed 42 --error-rate 0.5
	p=
	i=0
	while [ $i -lt 24 ]; do
		p="$p$(post /integration '{"service":"Ping"}')"
		i=$((i + 1))
	done
	stop_sim
	echo "$p"
}
P1=$(pattern)
P2=$(pattern)
check "the same seed and requests give the same faults" \
	sh -c "[ '$P1' = '$P2' ] && echo '$P1' | grep -q 500 && echo '$P1' | grep -q 200"

# ---- OAuth2 gateway -----------------------------------------------------
DST=
start_sim gw --oauth2 lgsp-key:lgsp-secret --token-ttl 60
code=$(post /auth '{"username":"lienthong","password":"secret"}')
check "gateway: a call without a bearer token gets 401 with a JSON error" \
	sh -c "[ $code = 401 ] && [ -s $T/body ] && jq -e '.error == \"invalid_token\"' $T/body"
code=$(curl -s -o "$T/body" -w '%{http_code}' -u lgsp-key:wrong -d grant_type=client_credentials "$BASE/token" || true)
check "gateway: wrong client secret gets 401" [ "$code" = 401 ]
code=$(curl -s -o "$T/body" -w '%{http_code}' -u lgsp-key:lgsp-secret -d grant_type=client_credentials "$BASE/token" || true)
TOKEN=$(jq -r '.access_token // empty' "$T/body")
check "gateway: POST /token with client credentials gives a Bearer token" \
	sh -c "[ $code = 200 ] && [ -n '$TOKEN' ] && [ -s $T/body ] && jq -e '.token_type == \"Bearer\" and .expires_in == 60' $T/body"
post /auth '{"username":"lienthong","password":"secret"}' -H "Authorization: Bearer $TOKEN" >/dev/null
SESSION=$(jq -r '.session // empty' "$T/body")
code=$(call Ping '' -H "Authorization: Bearer $TOKEN")
check "gateway: login and Ping with the bearer token" sh -c "[ -n '$SESSION' ] && [ $code = 200 ] && [ -s $T/body ] && jq -e '.error_code == 0' $T/body"
post /_sim/expire-tokens '{}' >/dev/null
code=$(call Ping '' -H "Authorization: Bearer $TOKEN")
check "gateway: an expired token gets 401" [ "$code" = 401 ]
stop_sim
check "gateway: SIGTERM, clean exit" [ "$STOP_STATUS" = 0 ]

echo "# $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
