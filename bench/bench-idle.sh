#!/bin/sh
# Idle cost of lienthongd: private memory (Private_Dirty of
# /proc/PID/smaps_rollup: shared library pages do not count) and CPU used
# over 10 s with every flow waiting for its timer. Targets: < 8 MB private,
# no CPU between timers.
. "$(dirname "$0")/lib.sh"
sim_start
write_base_conf "$T/d.conf"
sed -i 's/^log_level = debug/log_level = info/' "$T/d.conf"
relay_conf "$T/d.conf" "" "interval = 1h
run_at_start = true"
daemon_start "$T/d.conf"
wait_until 10 status_is '.flows[0].runs_ok == 1' || echo "# first pass did not finish"
sleep 1
pd=$(awk '/^Private_Dirty/ {print $2}' "/proc/$D_PID/smaps_rollup")
rss=$(awk '/^Rss/ {print $2}' "/proc/$D_PID/smaps_rollup")
ticks() { awk '{print $14 + $15}' "/proc/$D_PID/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks)
sleep 10
t1=$(ticks)
figure idle.private_dirty_kb "$pd" KiB
figure idle.rss_kb "$rss" KiB
figure idle.cpu_ms_per_10s $(((t1 - t0) * 1000 / hz)) ms
figure idle.limit_private_dirty_kb 8192 KiB
daemon_stop
