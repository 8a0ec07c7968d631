#!/bin/sh
# The daemon's lifecycle as systemd sees it: READY=1 on NOTIFY_SOCKET only
# once everything is up, STATUS=, WATCHDOG=1 pings, reload by SIGHUP with a
# valid and an invalid configuration (the old one keeps running), and a
# graceful SIGTERM within 5 s while a pass is in flight, with nothing lost.
. "$(dirname "$0")/lib.sh"

sim_start
notify_start
write_base_conf "$T/good.conf"
relay_conf "$T/good.conf" "backoff_base = 50ms" "interval = 1h"

daemon_start "$T/good.conf" NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=400000
check "READY=1 arrives on NOTIFY_SOCKET" wait_until 5 grep -q 'READY=1' "$T/notify.out"
check "READY=1 carries a STATUS= summary" grep -q 'READY=1.*STATUS=ready' "$T/notify.out"
check "the loop sends WATCHDOG=1 pings" wait_until 3 grep -q 'WATCHDOG=1' "$T/notify.out"
check "lienthongctl status answers" ctl status
check "status names the config file" status_is ".config.path == \"$T/good.conf\""
check "status lists both connectors" status_is '[.connectors[].name] | sort == ["inbox","national"]'
check "store health is ok" status_is '.store.health == "ok"'

# A pass moves a file to the national side.
printf '{"MaHoSo":"A-1"}\n{"MaHoSo":"A-2"}\n' >"$T/inbox/a.jsonl"
touch -d '1 minute ago' "$T/inbox/a.jsonl"
check "run relay starts a pass" ctl run relay
check "the records reach the simulator" wait_until 5 sim_is '.received | length == 2' '?service=Echo'
check "the delivered file is moved to done/" wait_until 5 test -f "$T/inbox/done/a.jsonl"

# Reload with a valid change.
sed 's/^interval = 1h/interval = 2h/' "$T/good.conf" >"$T/good2.conf"
cp "$T/good2.conf" "$T/good.conf"
: >"$T/notify.out"
kill -HUP "$D_PID"
check "SIGHUP sends RELOADING=1 with MONOTONIC_USEC" wait_until 5 grep -q 'RELOADING=1 MONOTONIC_USEC=[0-9]' "$T/notify.out"
check "READY=1 follows the reload" wait_until 5 grep -q 'READY=1' "$T/notify.out"
check "a valid reload is counted" wait_until 5 status_is '.reloads.ok == 1'
check "the new interval is in force" status_is '.flows[0].interval_s == 7200'

# Reload with an invalid file: every error logged, old config kept.
cp "$T/good.conf" "$T/good.saved"
printf '\n[daemon]\nbogus_key = 1\n' >>"$T/good.conf"
sed -i 's/^backoff_base = 50ms/backoff_base = fast/' "$T/good.conf"
kill -HUP "$D_PID"
check "an invalid reload is counted as failed" wait_until 5 status_is '.reloads.failed == 1'
check "the daemon keeps running on the old config" kill -0 "$D_PID"
check "the log names the unknown key with file and line" grep -q "good.conf:[0-9]*: \[daemon\] unknown key 'bogus_key'" "$T/daemon.log"
check "the log names the bad value too (every error, not the first)" grep -q "backoff_base: 'fast' is not a duration" "$T/daemon.log"
check "lienthongctl reload reports the errors and exits 1" sh -c "! $BIN/lienthongctl --socket $T/ctl.sock reload > $T/reload.out 2>&1 && grep -q bogus_key $T/reload.out"
check "the old interval still applies" status_is '.flows[0].interval_s == 7200'
cp "$T/good.saved" "$T/good.conf"

# Reload while a pass is in flight: the old instances are retired, their
# pass completes (the file is delivered once), the new config takes over.
sim_faults '{"latency_ms": 1000}'
printf '{"MaHoSo":"R-1"}\n' >"$T/inbox/r.jsonl"
touch -d '1 minute ago' "$T/inbox/r.jsonl"
ctl run relay >/dev/null
wait_until 5 status_is '.flows[0].state == "running"'
kill -HUP "$D_PID"
check "a reload during a pass is accepted" wait_until 5 status_is '.reloads.ok == 2'
check "the retired pass still delivers its file" wait_until 5 test -f "$T/inbox/done/r.jsonl"
check "the record was sent exactly once" sim_is '[.received[] | select(.MaHoSo == "R-1")] | length == 1' '?service=Echo'
check "the new flow is idle afterwards" wait_until 5 status_is '.flows[0].state == "idle"'
sim_faults '{"reset": true}'

# SIGTERM while a pass waits on a slow national side: exits 0 within 5 s,
# and the undelivered file stays in the inbox for the next start.
sim_faults '{"latency_ms": 3000}'
printf '{"MaHoSo":"B-1"}\n' >"$T/inbox/b.jsonl"
touch -d '1 minute ago' "$T/inbox/b.jsonl"
ctl run relay >/dev/null
wait_until 5 status_is '.flows[0].state == "running"'
: >"$T/notify.out"
daemon_stop
check "SIGTERM exits with status 0 (got $D_RC)" test "$D_RC" -eq 0
check "SIGTERM exits within 5 s (took $D_MS ms)" test "$D_MS" -lt 5000
check "STOPPING=1 is sent" grep -q 'STOPPING=1' "$T/notify.out"
check "the file in flight is still in the inbox" test -f "$T/inbox/b.jsonl"
check "the control socket is removed" test ! -e "$T/ctl.sock"

# Next start delivers it.
sim_faults '{"reset": true}'
daemon_start "$T/good.conf"
ctl run relay >/dev/null
check "after a restart the kept file is delivered" wait_until 5 test -f "$T/inbox/done/b.jsonl"
daemon_stop
finish
