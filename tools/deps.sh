#!/bin/sh
# Installs what building and testing lienthong needs, only what is missing:
# libraries are checked with pkg-config, tools with command -v. Debian 12,
# as root (or with sudo). Prints nothing when everything is there.
# `tools/deps.sh bench` also installs what only the benchmarks use (pandas,
# the analyst's tool the payment benchmark measures against).
set -eu

need=""
lib() { pkg-config --exists "$1" 2>/dev/null || need="$need $2"; }
tool() { command -v "$1" >/dev/null 2>&1 || need="$need $2"; }

tool pkg-config pkg-config
tool cc gcc
tool make make
tool git git
lib libcurl libcurl4-openssl-dev
lib jansson libjansson-dev
lib libxml-2.0 libxml2-dev
lib openssl libssl-dev
lib libsystemd libsystemd-dev
lib zlib zlib1g-dev
lib sqlite3 libsqlite3-dev
lib inih libinih-dev
lib libutf8proc libutf8proc-dev
lib libmicrohttpd libmicrohttpd-dev
# Tests and tools: curl and jq drive the simulator, setpriv (util-linux)
# runs the unprivileged-peer test, systemd-analyze checks the unit file,
# sqlite3 inspects stores, wrk is the load generator of the benchmarks,
# python3 (its standard library only) reads the reports' XLSX and HTML back,
# unzip opens the XLSX files in the payment flow's test.
tool curl curl
tool jq jq
tool setpriv util-linux
tool systemd-analyze systemd
tool sqlite3 sqlite3
tool wrk wrk
tool python3 python3
tool unzip unzip
if [ "${1:-}" = bench ]; then
	# Debian's interpreter: a python3 earlier on PATH (pyenv) may lack it
	/usr/bin/python3 -c 'import pandas' >/dev/null 2>&1 || need="$need python3-pandas"
fi
# make lint (part of make check): formatting and static analysis.
tool clang-format clang-format
tool cppcheck cppcheck
# The ASan/UBSan runtime ships with gcc; libasan is part of the gcc package.

[ -z "$need" ] && exit 0
echo "make deps: installing$need"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $need
