#!/bin/sh
# make demo: runs lienthongd's main job against the bundled simulator on
# loopback with a temporary state directory, prints what happened, and
# stops both cleanly. Grows with every flow.
set -eu
BUILD=${BUILD:-build}
bin=$(cd "$BUILD" && pwd)
dir=$(mktemp -d /tmp/lienthong-demo.XXXXXX)
sim_pid=""
d_pid=""
cleanup() {
	[ -n "$d_pid" ] && kill "$d_pid" 2>/dev/null && wait "$d_pid" 2>/dev/null
	[ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

wait_for() { # file seconds
	i=0
	while [ ! -e "$1" ]; do
		i=$((i + 1))
		[ "$i" -gt $(($2 * 10)) ] && { echo "demo: timed out waiting for $1" >&2; exit 1; }
		sleep 0.1
	done
}

echo "== starting lienthong-sim (the national adapter, simulated) on 127.0.0.1"
"$bin/lienthong-sim" --listen 127.0.0.1:0 --port-file "$dir/sim.port" --seed 42 \
	>"$dir/sim.log" 2>&1 &
sim_pid=$!
wait_for "$dir/sim.port" 10
port=$(cat "$dir/sim.port")
url="http://127.0.0.1:$port"

printf 'secret\n' >"$dir/adapter.password"
printf 'provincial-secret-token\n' >"$dir/province.token"
printf 'paygov-secret-token\n' >"$dir/paygov.token"
printf 'paygov-partner-key\n' >"$dir/paygov.key"
chmod 600 "$dir/adapter.password" "$dir/province.token" "$dir/paygov.token" "$dir/paygov.key"
# the office's reports outlive the demo: open the HTML page afterwards
reports=$bin/demo-reports
mkdir -p "$reports"
mkdir -p "$dir/inbox"
cat >"$dir/lienthong.conf" <<CONF
# Demo configuration written by tools/demo.sh.
[daemon]
log_target = stderr
plugin_dir = $dir/plugins
mappings_dir = $(pwd)/mappings

[store]
path = $dir/state/lienthong.db

[control]
path = $dir/control.sock

[connector.inbox]
type = files
in_dir = $dir/inbox
min_age = 0

[connector.national]
type = adapter
url = $url
username = lienthong
password = $dir/adapter.password
madonvi = 000.00.00.H31
push_service = Echo
max_attempts = 3
backoff_base = 100ms

[flow.relay]
source = inbox
sink = national
interval = 1h
run_at_start = true

# The procedures flow: the national procedure database (simulated, 2,000
# procedures) to the provincial one-stop system (simulated, seeded with
# deliberate differences).
[connector.csdl]
type = csdl
url = $url
username = lienthong
password = $dir/adapter.password
madonvi = 000.00.00.H31

[connector.province]
type = provincial
url = $url/provincial
token = $dir/province.token

[flow.catalog]
source = csdl
target = province
interval = 15m
full_interval = 1d
run_at_start = true

# The dossier flow: a generated day of dossiers (1,000 received, each walking
# through its statuses) from the provincial change feed to the national
# public service portal (both simulated), through the durable outbox.
[connector.portal]
type = dvcqg
url = $url
username = lienthong
password = $dir/adapter.password
madonvi = 000.00.00.H31

[flow.dossier]
source = province
target = portal
interval = 1s
run_at_start = true
deadline_interval = 2s

# The payment flow: the generated day's online fee payments on the national
# payment platform (simulated, with seeded discrepancies of every kind),
# reconciled against the provincial fee records and what the portal was
# sent. Started by hand below, once the dossiers are on the portal.
[connector.paygov]
type = paygov
url = $url/paygov
token = $dir/paygov.token
partner = HUNGYEN
key = $dir/paygov.key

[flow.payment]
platform = paygov
fees = province
days = 4
today = true
interval = 1d
reports_dir = $reports
CONF

echo "== the dossier files waiting in the drop folder"
cat >"$dir/inbox/hoso-1.jsonl" <<'DATA'
{"MaHoSo":"000.00.12.H31-250101-00001","TrangThaiHoSo":"2","NgayTiepNhan":"20250101083000"}
{"MaHoSo":"000.00.12.H31-250101-00002","TrangThaiHoSo":"4","NgayTiepNhan":"20250101091500"}
DATA
printf '\357\273\277MaHoSo,TrangThaiHoSo,NgayTiepNhan\r\n000.00.12.H31-250101-00003,9,20250101101000\r\n' \
	>"$dir/inbox/hoso-2.csv"
printf '{"MaHoSo": "broken"\n' >"$dir/inbox/hoso-3.jsonl"
touch -d '1 minute ago' "$dir/inbox/"*
ls "$dir/inbox"

"$bin/lienthongd" --check-config --config "$dir/lienthong.conf"
echo "== starting lienthongd"
"$bin/lienthongd" --config "$dir/lienthong.conf" 2>"$dir/daemon.log" &
d_pid=$!
wait_for "$dir/control.sock" 10
ctl() { "$bin/lienthongctl" --socket "$dir/control.sock" "$@"; }

passes_done() { # every flow has ended one pass; the dossier flow, which runs on, is caught up
	ctl --json status | jq -e '[.flows[] | select(.type != "dossier" and .type != "payment") | .runs_ok + .runs_failed] | all(. >= 1)' >/dev/null 2>&1 &&
		ctl --json status | jq -e '.flows[] | select(.type == "dossier") |
			.detail.pass.caught_up and .detail.queue.depth == 0 and .detail.queue.rows_pending == 0 and .detail.pass.changes > 0' >/dev/null 2>&1 &&
		ctl --json mismatches --kind dossier.overdue --limit 1 | jq -e '.mismatches | length > 0' >/dev/null 2>&1
}
i=0
while ! passes_done; do
	i=$((i + 1))
	[ "$i" -gt 600 ] && { echo "demo: the first passes did not finish" >&2; cat "$dir/daemon.log" >&2; exit 1; }
	sleep 0.1
done
echo
echo "== lienthongctl status"
ctl status
echo
echo "== what the simulated national adapter received (GET /_sim/stats?service=Echo)"
curl -s "$url/_sim/stats?service=Echo" | jq -c '.received[]'
echo
echo "== rejected files (in inbox/failed/, with the reason)"
for r in "$dir"/inbox/failed/*.reason; do
	[ -e "$r" ] && printf '%s: %s\n' "$(basename "$r" .reason)" "$(cat "$r")"
done
echo
echo "== the procedure catalogue after the first sync (lienthongctl procedures)"
ctl procedures | head -12
echo
echo "== catalogue mismatches found (lienthongctl mismatches --kind 'catalog.*')"
ctl --json mismatches --kind 'catalog.*' --limit 1000 |
	jq -r '.mismatches | group_by(.kind) | .[] | "\(.[0].kind): \(length)"'
ctl mismatches --kind 'catalog.*' --limit 12
echo
echo "== dossiers: what the simulated national portal received (GET /_sim/portal/stats)"
curl -s "$url/_sim/feed" | jq -r '"the provincial feed holds \(.changes) changes of \(.dossiers) dossiers"'
curl -s "$url/_sim/portal/stats" |
	jq -r '"the portal holds \(.dossiers) dossiers (\(.creates) created, \(.updates) updated) and \(.progress_rows) progress rows; rows received twice: \(.duplicates)"'
ctl --json status | jq -r '.flows[] | select(.type == "dossier") | "outbox: \(.detail.queue.depth) dossiers waiting, \(.detail.queue.dead_letters) dead letters"'
m=$(curl -s "$url/provincial/api/v1/ho-so/thay-doi?limit=1" -H 'Authorization: Bearer provincial-secret-token' | jq -r '.items[0].maHoSo')
echo
echo "== one dossier on the portal: $m (GET /_sim/portal/dossier)"
curl -s "$url/_sim/portal/dossier?mahoso=$m" |
	jq -r '"status \(.header.TrangThaiHoSo), headers received \(.headers_received)", (.progress[] | "  \(.ThoiDiemXuLy)  status \(.TrangThai)  \(.NoiDungXuLy // "")")'
echo
echo "== overdue dossiers: the province owes an apology letter (lienthongctl mismatches --kind dossier.overdue)"
ctl --json mismatches --kind 'dossier.*' --limit 100000 |
	jq -r '.mismatches | group_by(.kind) | .[] | "\(.[0].kind): \(length)"'
ctl mismatches --kind dossier.overdue --limit 5
echo
echo "== payments: the days' online fees reconciled (lienthongctl run payment)"
ctl run payment >/dev/null
i=0
while ! ctl --json status | jq -e '.flows[] | select(.type == "payment") | .runs_ok + .runs_failed >= 1' >/dev/null 2>&1; do
	i=$((i + 1))
	[ "$i" -gt 600 ] && { echo "demo: the payment pass did not finish" >&2; cat "$dir/daemon.log" >&2; exit 1; }
	sleep 0.1
done
ctl --json status | jq -r '.flows[] | select(.type == "payment") | .last_summary'
ctl --json mismatches --kind 'payment.*' --limit 100000 |
	jq -r '.mismatches | group_by(.kind) | .[] | "\(.[0].kind): \(length)"'
ctl mismatches --kind payment.amount_differs --limit 3
from=$(TZ=Asia/Ho_Chi_Minh date -d '-4 day' +%F)
to=$(TZ=Asia/Ho_Chi_Minh date +%F)
echo
echo "== the office's report of $from..$to (lienthongctl report payments --from $from --to $to)"
ctl report payments --from "$from" --to "$to"
html=$(ctl --json report payments --from "$from" --to "$to" --formats html | jq -r '.paths.html')
echo
echo "The HTML report: $html"
echo
echo "== stopping"
kill -TERM "$d_pid"
wait "$d_pid"
rc=$?
d_pid=""
echo "lienthongd exited with status $rc"
grep -E 'ready|pass done|stopped' "$dir/daemon.log" | sed 's/^/  log: /'
