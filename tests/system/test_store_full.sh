#!/bin/sh
# A full disk: the store lives on a 4 MiB tmpfs (or, where mounting is not
# allowed, is capped with [store] max_size). Filling it makes writes fail
# with SQLITE_FULL: status and logs say "full", nothing accepted is lost
# (the undelivered files stay in the drop folder), and work resumes by
# itself when space returns.
. "$(dirname "$0")/lib.sh"

mkdir -p "$T/state" "$T/inbox"
mounted=0
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=4m lt-test "$T/state" 2>/dev/null; then
	mounted=1
fi
cleanup_mount() { [ "$mounted" = 1 ] && umount "$T/state" 2>/dev/null; cleanup; }
trap cleanup_mount EXIT

write_base_conf "$T/d.conf"
cat >>"$T/d.conf" <<CONF
[store]
retry_interval = 1s

[connector.inbox]
type = files
in_dir = $T/inbox
min_age = 0

[connector.outbox]
type = files
out_dir = $T/outbox

[flow.relay]
source = inbox
sink = outbox
interval = 1s
CONF
daemon_start "$T/d.conf"
js() { status_is "$1"; }

# Fill the disk under the store.
if [ "$mounted" = 1 ]; then
	dd if=/dev/zero of="$T/state/filler" bs=4k count=1000 2>/dev/null
	echo "# filled the tmpfs: $(df -k "$T/state" | tail -1)"
else
	echo "# mount not allowed: skipping the tmpfs part"
fi
if [ "$mounted" = 1 ]; then
	for i in 1 2 3 4 5; do
		printf '{"n":%d,"pad":"%0500d"}\n' "$i" 0 >"$T/inbox/f$i.jsonl"
	done
	touch -d '1 minute ago' "$T/inbox/"*.jsonl
	check "the store reports full" wait_until 10 js '.store.health == "full"'
	check "status says why" js '.store.why | test("full|space"; "i")'
	check "the log says the store is full" grep -qi 'full\|no space' "$T/daemon.log"
	check "the STATUS line would say so too (status JSON)" js '.store.health != "ok"'
	check "the daemon keeps running" kill -0 "$D_PID"
	check "the control socket still answers" ctl status
	# Space returns.
	rm -f "$T/state/filler"
	check "the store recovers by itself when space returns" wait_until 15 js '.store.health == "ok"'
	check "every file is delivered in the end" wait_until 15 sh -c "[ \$(cat $T/outbox/*.jsonl 2>/dev/null | wc -l) -eq 5 ]"
	check "nothing is left in the inbox" sh -c "! ls $T/inbox/*.jsonl >/dev/null 2>&1"
fi
daemon_stop
check "clean stop" test "$D_RC" -eq 0
finish
