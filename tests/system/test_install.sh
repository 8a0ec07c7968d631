#!/bin/sh
# make install into a DESTDIR with another PREFIX: binaries, unit file with
# the right paths, example config (0640), mappings, man pages, sysusers and
# tmpfiles entries.
. "$(dirname "$0")/lib.sh"
root="$T/root"
make -s --no-print-directory BUILD="$BUILD" install DESTDIR="$root" PREFIX=/usr >"$T/install.log" 2>&1
rc=$?
check "make install DESTDIR=... PREFIX=/usr succeeds" test "$rc" -eq 0
for f in /usr/sbin/lienthongd /usr/bin/lienthongctl /usr/bin/lienthong-sim; do
	check "installs $f executable" test -x "$root$f"
done
check "installs the example config" test -f "$root/etc/lienthong/lienthong.conf"
check "the config is not readable by others (0640)" sh -c "[ \$(stat -c %a $root/etc/lienthong/lienthong.conf) = 640 ]"
check "installs the unit file" test -f "$root/lib/systemd/system/lienthong.service"
check "the unit's ExecStart follows PREFIX" grep -q '^ExecStart=/usr/sbin/lienthongd' "$root/lib/systemd/system/lienthong.service"
check "no /usr/local path is left in the unit" sh -c "! grep -q /usr/local/ $root/lib/systemd/system/lienthong.service"
for m in man8/lienthongd.8 man1/lienthongctl.1 man1/lienthong-sim.1 man5/lienthong.conf.5; do
	check "installs man page $m" test -f "$root/usr/share/man/$m"
done
check "installs the mappings into /etc" test -f "$root/etc/lienthong/mappings/procedure.json"
check "and the shipped set into share/ for comparison" test -f "$root/usr/share/lienthong/mappings/procedure.json"
echo '{"site": "edited"}' >"$root/etc/lienthong/mappings/procedure.json"
make -s --no-print-directory BUILD="$BUILD" install DESTDIR="$root" PREFIX=/usr >>"$T/install.log" 2>&1
check "a second install keeps the site's edited mapping" grep -q edited "$root/etc/lienthong/mappings/procedure.json"
check "installs the sysusers entry" test -f "$root/usr/lib/sysusers.d/lienthong.conf"
check "installs the tmpfiles entry" test -f "$root/usr/lib/tmpfiles.d/lienthong.conf"
check "the installed daemon runs" "$root/usr/sbin/lienthongd" --version
check "the installed example config is valid" "$root/usr/sbin/lienthongd" --check-config --config "$root/etc/lienthong/lienthong.conf"
finish
