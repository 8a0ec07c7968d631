#!/bin/sh
# The procedures flow over a national catalogue of 2,000 procedures on
# loopback: the first sync, a steady full pass (every record fetched,
# hashed, mapped, compared), and a quick pass with no changes. Targets:
# full pass < 5 s, < 50 MB peak RSS; quick pass < 1 s. The limit printed
# beside: the same LayThuTuc requests from wrk against the same simulator.
. "$(dirname "$0")/lib.sh"
N=${PROCEDURES:-2000}
sim_start --procedures "$N"
write_base_conf "$T/d.conf"
sed -i 's/^log_level = debug/log_level = notice/' "$T/d.conf"
catalog_conf "$T/d.conf" "interval = 1h" "concurrency = 8"
daemon_start "$T/d.conf"
done_runs() { status_is "[.flows[] | select(.name==\"catalog\")][0] | select(.state != \"running\") | .runs_ok + .runs_failed == $1"; }
pass() { # MODE N -> prints the pass duration in s
	ctl run catalog "$1" >/dev/null
	wait_until 120 done_runs "$2" || echo "# pass $2 did not finish" >&2
	ctl_json status | jq '[.flows[] | select(.name=="catalog")][0].last_duration_s'
}
first=$(pass full 1)
full=$(pass full 2)
quick=$(pass quick 3)
figure catalog.procedures "$N" procedures
figure catalog.first_sync_s "$first" s
figure catalog.full_pass_s "$full" s
figure catalog.quick_pass_s "$quick" s
figure catalog.procedures_per_s "$(echo "$N $full" | awk '{printf "%.0f", $1/$2}')" procedures/s
figure catalog.peak_rss_mb "$(awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$D_PID/status")" MB
ctl_json status | jq -r '"# " + ([.flows[] | select(.name=="catalog")][0].last_summary)'
daemon_stop

# The limit: wrk sending LayThuTuc (one code) with a session, 8 connections.
session=$(curl -s -X POST -d '{"username":"lienthong","password":"secret"}' "$SIM_URL/auth" | jq -r .session)
code=$(curl -s -X POST -d "{\"session\":\"$session\",\"service\":\"LayDanhSachTTHC\"}" "$SIM_URL/share" | jq -r '.result[100].MATTHC')
cat >"$T/get.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"session":"$session","madonvi":"000.00.00.H31","service":"LayThuTuc","maTTHC":"$code"}'
LUA
if command -v wrk >/dev/null; then
	rate=$(wrk -t 2 -c 8 -d 5s -s "$T/get.lua" "$SIM_URL/share" | awk '/Requests\/sec/ {printf "%.0f", $2}')
	figure catalog.limit_requests_per_s "$rate" requests/s
else
	echo "# wrk not installed: no limit figure"
fi
