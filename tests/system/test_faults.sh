#!/bin/sh
# The HTTP core inside the real daemon against injected faults: retries
# with back-off, Retry-After, the circuit breaker opening on a dead endpoint
# (and saying so in status), not hammering it while open, and closing again
# when the endpoint recovers. A failed pass loses nothing: the file stays.
. "$(dirname "$0")/lib.sh"

sim_start
write_base_conf "$T/d.conf"
relay_conf "$T/d.conf" "max_attempts = 3
backoff_base = 50ms
backoff_cap = 2s
breaker_failures = 4
breaker_open = 2s
timeout = 2s"
daemon_start "$T/d.conf"
js() { status_is "$1"; }
drop() { printf '{"MaHoSo":"%s"}\n' "$1" >"$T/inbox/$1.jsonl"; touch -d '1 minute ago' "$T/inbox/$1.jsonl"; }
pass_done() { status_is ".flows[0].state != \"running\" and .flows[0].runs_ok + .flows[0].runs_failed == $1"; }

# 1. Two 503s, then success: retried transparently.
drop one
sim_faults '{"fail_next": 2, "service": "Echo"}'
ctl run relay >/dev/null
wait_until 10 pass_done 1
check "a pass with two 503s before success ends ok" js '.flows[0].runs_ok == 1'
check "the simulator saw two 503s and one 200 for Echo" sim_is '.by_service.Echo.status["503"] == 2 and .by_service.Echo.status["200"] == 1'
check "the retries are counted in metrics" sh -c "$BIN/lienthongctl --socket $T/ctl.sock metrics | grep -q 'lienthong_http_retries_total{connector=\"national\"} 2'"
check "the file was delivered" test -f "$T/inbox/done/one.jsonl"

# 2. 429 with Retry-After: 1 s is honoured between attempts.
sim_faults '{"reset": true}'
sim_faults '{"rate_limit_rate": 1.0, "retry_after_s": 1, "service": "Echo"}'
drop two
ctl run relay >/dev/null
wait_until 15 pass_done 2
check "a pass refused by 429 ends as retry, not ok" js '.flows[0].runs_failed == 1'
check "Retry-After is honoured: 3 attempts take at least 2 s" js '.flows[0].last_duration_s >= 2.0'
check "the refused file stays in the inbox" test -f "$T/inbox/two.jsonl"
check "status shows the last error" js '.flows[0].last_error | test("429|retry"; "i")'

# 3. A dead endpoint opens the circuit; while open nothing is sent.
sim_faults '{"reset": true}'
sim_faults '{"down": true}'
ctl run relay >/dev/null
wait_until 15 pass_done 3
ctl run relay >/dev/null
wait_until 15 pass_done 4
check "the circuit opens after repeated failures" js '.connectors[] | select(.name=="national") | .circuit == "open"'
check "status says circuit-open for the connector" js '.connectors[] | select(.name=="national") | .state == "circuit-open"'
before=$(sim_stat .requests_total)
ctl run relay >/dev/null
wait_until 5 pass_done 5
after=$(sim_stat .requests_total)
check "while open, a pass sends nothing to the dead endpoint ($before -> $after)" test "$before" -eq "$after"
check "the metrics show the open circuit" sh -c "$BIN/lienthongctl --socket $T/ctl.sock metrics | grep -q 'lienthong_http_circuit_state{connector=\"national\"} 1'"

# 4. Recovery: after breaker_open a probe goes through and closes it.
sim_faults '{"reset": true}'
sleep 2.2
ctl run relay >/dev/null
wait_until 10 pass_done 6
check "after the endpoint recovers the pass succeeds" js '.flows[0].last_error_at < .flows[0].last_ok'
check "the circuit is closed again" js '.connectors[] | select(.name=="national") | .circuit == "closed"'
check "the kept file is delivered at last" test -f "$T/inbox/done/two.jsonl"
check "the daemon logged the circuit opening" grep -qi 'circuit.*open' "$T/daemon.log"
daemon_stop
check "clean stop" test "$D_RC" -eq 0
finish
