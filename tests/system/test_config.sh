#!/bin/sh
# lienthongd --check-config and start-up refusals: each bad configuration
# gives a clear error naming file and line, exit status 1; a good one exits
# 0. Connector plugins: a plugin of the right ABI is loaded and works, one
# of another ABI is refused with both versions named.
. "$(dirname "$0")/lib.sh"

checkconf() { "$BIN/lienthongd" --check-config --config "$1" >"$T/out" 2>&1; }
expect_error() { # DESC FILE PATTERN
	if checkconf "$2"; then
		fail "$1 (exit 0)"
	elif grep -q -- "$3" "$T/out"; then
		pass "$1"
	else
		fail "$1: no line matching '$3'"
		sed 's/^/#   /' "$T/out"
	fi
}

write_base_conf "$T/ok.conf"
check "a minimal configuration is valid" checkconf "$T/ok.conf"
check "--check-config says so on stdout" grep -q 'configuration is valid' "$T/out"

write_base_conf "$T/unknown-key.conf"
printf '[store]\ncolour = blue\n' >>"$T/unknown-key.conf"
expect_error "an unknown key is named with file and line" "$T/unknown-key.conf" "unknown-key.conf:13: \[store\] unknown key 'colour'"

write_base_conf "$T/bad-value.conf"
printf '[control]\nmax_clients = lots\n' >>"$T/bad-value.conf"
expect_error "a bad value is named with file and line" "$T/bad-value.conf" "bad-value.conf:13: \[control\] max_clients: 'lots' is not an integer"

write_base_conf "$T/range.conf"
printf '[daemon]\nshutdown_timeout = 2h\n' >>"$T/range.conf"
expect_error "an out-of-range value says the range" "$T/range.conf" "shutdown_timeout: out of range: must be between 100ms and 1m"

expect_error "a missing file is named" "$T/does-not-exist.conf" "does-not-exist.conf: cannot open configuration file: No such file"

write_base_conf "$T/section.conf"
printf '[deamon]\nlog_level = info\n' >>"$T/section.conf"
expect_error "an unknown section is named with its line" "$T/section.conf" "section.conf:13: unknown section \[deamon\]"

printf 'secret\n' >"$T/loose.pw"
chmod 644 "$T/loose.pw"
write_base_conf "$T/loose.conf"
printf '[connector.national]\ntype = adapter\nurl = http://127.0.0.1:9\npassword = %s\n' "$T/loose.pw" >>"$T/loose.conf"
expect_error "a secrets file readable by others is refused, with file and line" "$T/loose.conf" "loose.conf:15: \[connector.national\] password: secret file $T/loose.pw has mode 0644"

write_base_conf "$T/nouser.conf"
printf '[connector.national]\ntype = adapter\nurl = http://127.0.0.1:9\n' >>"$T/nouser.conf"
expect_error "an adapter with session auth but no credentials is caught by --check-config" "$T/nouser.conf" "\[connector.national\] auth with a session needs username, password"

awk 'BEGIN { printf("[daemon]\nlog_level = info ; "); for (i = 0; i < 300; i++) printf("x"); printf("\n[store]\nbogus = 1\n") }' >"$T/long.conf"
expect_error "a line longer than the parser's buffer is named" "$T/long.conf" "long.conf:2: line longer than 198 bytes"
check "and later lines keep their numbers" grep -q "long.conf:4: \[store\] unknown key 'bogus'" "$T/out"

write_base_conf "$T/ref.conf"
printf '[connector.inbox]\ntype = files\nin_dir = %s/in\n[flow.relay]\nsource = inbox\nsink = nowhere\n' "$T" >>"$T/ref.conf"
expect_error "a flow naming an unknown connector is refused" "$T/ref.conf" "\[flow.relay\].*nowhere"

write_base_conf "$T/syntax.conf"
printf 'this is not ini\n' >>"$T/syntax.conf"
expect_error "a syntax error is named with its line" "$T/syntax.conf" "syntax.conf:12: syntax error"

# Several errors are all reported.
write_base_conf "$T/many.conf"
printf '[store]\nbusy_timeout = soon\nfoo = 1\n[control]\nmode = 999\n' >>"$T/many.conf"
checkconf "$T/many.conf"
check "every error of a file is reported (3 here)" grep -q 'many.conf: 3 errors' "$T/out"

# Starting with a bad config: exit 1, no socket, the reason in the log.
"$BIN/lienthongd" --config "$T/many.conf" >"$T/start.log" 2>&1
rc=$?
check "the daemon refuses to start on a bad config (exit $rc)" test "$rc" -eq 1
check "and says why" grep -q "not valid (3 errors); not starting" "$T/start.log"
check "and leaves no control socket" test ! -e "$T/ctl.sock"

# A store that cannot be opened stops the daemon with a clear message.
write_base_conf "$T/store.conf"
mkdir -p "$T/state"
printf 'this is not a database, it is a text file of some length......' >"$T/state/lienthong.db"
"$BIN/lienthongd" --config "$T/store.conf" >"$T/store.log" 2>&1
rc=$?
check "an unusable store stops the start (exit $rc)" test "$rc" -eq 1
check "naming the database file" grep -q "cannot open the store.*$T/state/lienthong.db" "$T/store.log"
rm -f "$T/state/lienthong.db"

# Plugins.
mkdir -p "$T/plugins"
cp "$BIN/tests/plugins/plug_null.so" "$T/plugins/"
write_base_conf "$T/plugin.conf"
printf '[connector.sink]\ntype = null\n' >>"$T/plugin.conf"
check "a connector plugin of our ABI provides its type" checkconf "$T/plugin.conf"
cp "$BIN/tests/plugins/plug_badabi.so" "$T/plugins/"
expect_error "a plugin of another ABI is refused naming both versions" "$T/plugin.conf" "plug_badabi.so: connector plugin 'badabi' was built for connector ABI 99, this lienthongd speaks ABI 1"
rm -f "$T/plugins/plug_badabi.so"

# The plugin works end to end: files -> relay -> null.
mkdir -p "$T/in"
printf '{"a":1}\n{"a":2}\n{"a":3}\n' >"$T/in/x.jsonl"
touch -d '1 minute ago' "$T/in/x.jsonl"
printf '[connector.inbox]\ntype = files\nin_dir = %s/in\nmin_age = 0\n[flow.relay]\nsource = inbox\nsink = sink\nrun_at_start = true\n' "$T" >>"$T/plugin.conf"
daemon_start "$T/plugin.conf"
check "the plugin connector receives the records" wait_until 5 json_is connectors '.[] | select(.name=="sink") | .detail.records == 3'
daemon_stop
check "the daemon with a plugin stops cleanly" test "$D_RC" -eq 0
# The dossier flow's references and limits (no simulator needed to check).
SIM_URL=http://127.0.0.1:9 # read by dossier_conf (lib.sh)
export SIM_URL
write_base_conf "$T/dos.conf"
dossier_conf "$T/dos.conf"
check "a dossier pipeline is valid" checkconf "$T/dos.conf"
write_base_conf "$T/dos1.conf"
dossier_conf "$T/dos1.conf" "retry_max = 100ms"
expect_error "dossier: retry_max shorter than retry_min is refused" "$T/dos1.conf" "retry_max is shorter than retry_min"
write_base_conf "$T/dos2.conf"
dossier_conf "$T/dos2.conf" "header_mapping = nope"
expect_error "dossier: an unknown field map is named" "$T/dos2.conf" "header_mapping: no field map named 'nope'"
write_base_conf "$T/dos3.conf"
dossier_conf "$T/dos3.conf"
sed -i 's/^target = portal$/target = province/' "$T/dos3.conf"
expect_error "dossier: a target of the wrong type says which type it needs" "$T/dos3.conf" "connector 'province' is of type provincial; this flow needs type dvcqg"
write_base_conf "$T/dos4.conf"
dossier_conf "$T/dos4.conf"
printf '\n[flow.second]\ntype = dossier\nsource = province\ntarget = portal\n' >>"$T/dos4.conf"
expect_error "dossier: a second dossier flow is refused (one outbox, one pusher)" "$T/dos4.conf" "a second dossier flow (the first is \[flow.dossier\])"
finish
