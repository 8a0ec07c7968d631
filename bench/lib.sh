# bench/lib.sh: shared by the benchmarks (sourced). Reuses the system
# tests' helpers to start the real binaries; prints figures as
#   bench NAME VALUE UNIT
. "$(dirname "$0")/../tests/system/lib.sh"
figure() { printf 'bench %s %s %s\n' "$1" "$2" "$3"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
