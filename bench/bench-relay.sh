#!/bin/sh
# Throughput of the foundation's path: drop folder -> relay flow -> adapter
# connector -> HTTP core -> simulator (Echo, 100 records per call). The
# limit is the same requests from a plain load generator (wrk) against the
# same simulator, printed in the same run.
. "$(dirname "$0")/lib.sh"
RECORDS=${RECORDS:-50000}
PER_FILE=1000
sim_start --threads 2
write_base_conf "$T/d.conf"
sed -i 's/^log_level = debug/log_level = notice/' "$T/d.conf"
relay_conf "$T/d.conf" "push_batch = 100
push_parallel = 8
concurrency = 8" "max_batches = 100000"
awk -v n="$RECORDS" -v per="$PER_FILE" -v dir="$T/inbox" 'BEGIN {
	for (i = 0; i < n; i++) {
		f = sprintf("%s/batch-%05d.jsonl", dir, int(i / per));
		printf("{\"MaHoSo\":\"000.00.12.H31-250101-%06d\",\"TrangThaiHoSo\":\"4\",\"NgayTiepNhan\":\"20250101083000\",\"NoiDungXuLy\":\"Chuyển xử lý\"}\n", i) > f;
	}
}'
touch -d '1 minute ago' "$T/inbox/"*
daemon_start "$T/d.conf"
t0=$(now_ms)
ctl run relay >/dev/null
wait_until 300 status_is '.flows[0].runs_ok == 1' || echo "# the pass did not finish"
t1=$(now_ms)
ms=$((t1 - t0))
reqs=$(curl -s "$SIM_URL/_sim/stats" | jq '.by_service.Echo.count')
figure relay.records "$RECORDS" records
figure relay.pass_s "$(echo "$ms" | awk '{printf "%.3f", $1/1000}')" s
figure relay.records_per_s "$(echo "$RECORDS $ms" | awk '{printf "%.0f", $1*1000/$2}')" records/s
figure relay.requests_per_s "$(echo "$reqs $ms" | awk '{printf "%.0f", $1*1000/$2}')" requests/s
figure relay.peak_rss_mb "$(awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$D_PID/status")" MB
daemon_stop

# The limit: wrk posting the same 100-record Echo call with a session.
session=$(curl -s -X POST -d '{"username":"lienthong","password":"secret"}' "$SIM_URL/auth" | jq -r .session)
body=$(awk 'BEGIN { printf("{\"session\":\"SESSION\",\"madonvi\":\"x\",\"service\":\"Echo\",\"data\":["); for (i = 0; i < 100; i++) printf("%s{\"MaHoSo\":\"000.00.12.H31-250101-%06d\",\"TrangThaiHoSo\":\"4\",\"NgayTiepNhan\":\"20250101083000\",\"NoiDungXuLy\":\"Chuyển xử lý\"}", i ? "," : "", i); printf("]}") }' | sed "s/SESSION/$session/")
cat >"$T/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[$body]]
LUA
curl -s -X POST -d '{"reset":true}' "$SIM_URL/_sim/reset" >/dev/null
if command -v wrk >/dev/null; then
	rate=$(wrk -t 2 -c 8 -d 5s -s "$T/post.lua" "$SIM_URL/integration" | awk '/Requests\/sec/ {printf "%.0f", $2}')
	figure relay.limit_requests_per_s "$rate" requests/s
else
	echo "# wrk not installed: no limit figure"
fi
