#!/bin/sh
# The procedures flow end to end against the simulator: first sync (every
# seeded difference found, exactly), incremental change, new codes on a
# quick pass, withdrawal (marked, not deleted), mismatches closing by
# themselves when they clear, and bad input from the national side (empty
# list, HTML instead of JSON, expired sessions, a 429 storm, an outage)
# never withdrawing anything by mistake.
. "$(dirname "$0")/lib.sh"

sim_start --procedures 300
write_base_conf "$T/d.conf"
catalog_conf "$T/d.conf" "interval = 1h"
daemon_start "$T/d.conf"

runs() { status_is "[.flows[] | select(.name==\"catalog\")][0] | select(.state != \"running\") | .runs_ok + .runs_failed == $1"; }
run_pass() { # MODE EXPECTED_RUNS
	ctl run catalog "$1" >/dev/null
	wait_until 60 runs "$2" || echo "# pass $2 did not finish"
}
diffs() { curl -sf "$SIM_URL/_sim/catalog/differences"; }
# keys_of KIND: sorted keys of the open mismatches of one kind.
keys_of() { ctl_json mismatches --kind "catalog.$1" --state open --limit 10000 | jq -r '.mismatches[].key' | sort; }
sim_keys() { diffs | jq -r ".$1[]" | sort; }
same_keys() { # DESC KIND SIMKIND
	k=$(keys_of "$2")
	e=$(sim_keys "$3")
	if [ -n "$e" ] && [ "$k" = "$e" ]; then pass "$1 ($(echo "$e" | wc -l))"; else
		fail "$1"; echo "#   daemon: $(echo $k)"; echo "#   seeded: $(echo $e)"; fi
}

# ---- first sync ---------------------------------------------------------
diffs >"$T/seeded.json"
run_pass full 1
check "the first pass ends ok" status_is '.flows[0].runs_ok == 1'
published=$(curl -sf "$SIM_URL/_sim/catalog" | jq .published)
check "every published procedure is stored ($published)" json_is procedures ".active == $published"
same_keys "every seeded fee difference is found, and nothing else" fee fee
same_keys "every seeded time-limit difference is found" time_limit time_limit
same_keys "every seeded channel difference is found" channel channel
same_keys "every seeded documents difference is found" documents documents
same_keys "every seeded agency difference is found" agency agency
same_keys "provincial-only codes are reported as unknown nationally" unknown_provincial unknown
same_keys "provincial codes withdrawn nationally are reported as such" withdrawn_provincial withdrawn
same_keys "records with a retired agency are unmappable, with the reason" unmappable unmappable
same_keys "malformed national records are logged, the pass goes on" malformed malformed
missing=$(jq -r '.missing[]' "$T/seeded.json" | sort)
puts=$(curl -sf "$SIM_URL/_sim/provincial/puts" | jq -r '.by_code | keys[]' | sort)
check "procedures missing provincially are delivered, and only they" test "$missing" = "$puts"
check "after delivery nothing is missing provincially" json_is "mismatches --kind catalog.missing_provincial --state open" '.mismatches | length == 0'
code=$(jq -r '.fee[0]' "$T/seeded.json")
check "a fee mismatch carries both values" json_is "mismatches --kind catalog.fee --key $code" '.mismatches[0].detail | (if type == "string" then fromjson else . end) | .national != .provincial and .national != null'
check "lienthongctl procedure shows both sides" json_is "procedure $code" '.national != null and .provincial != null and (.history | length) == 1'
bad=$(jq -r '.malformed[0]' "$T/seeded.json")
check "the raw record of a malformed answer is kept" json_is "mismatches --kind catalog.malformed --key $bad" '.mismatches[0].raw | length > 0'

# ---- a second full pass changes nothing ------------------------------------
open1=$(ctl_json mismatches --state open --limit 10000 | jq '.mismatches | length')
run_pass full 2
open2=$(ctl_json mismatches --state open --limit 10000 | jq '.mismatches | length')
check "a second full pass finds the same $open1 open mismatches ($open2)" test "$open1" = "$open2"
check "and delivers nothing again" sim_json /_sim/provincial/puts ".total == $(echo "$missing" | wc -l)"

# ---- incremental change ----------------------------------------------------------
# A procedure with no seeded difference: no open mismatch, not delivered.
plain=""
for c in $(ctl_json procedures | jq -r '.last_changes[].code'); do
	if jq -e --arg c "$c" '[.[]] | flatten | index($c) == null' "$T/seeded.json" >/dev/null; then
		plain=$c
		break
	fi
done
check "a procedure without seeded differences is found ($plain)" test -n "$plain"
curl -sf -X POST -d "{\"op\":\"change\",\"code\":\"$plain\"}" "$SIM_URL/_sim/catalog" >/dev/null
run_pass full 3
check "a national change is recorded in the history with the fields that changed" json_is "procedure $plain" '.history[0].change == "changed" and (.history[0].fields_changed | index("TENTTHC"))'
check "the changed procedure is delivered to the province" sim_json /_sim/provincial/puts ".by_code[\"$plain\"] == 1"
check "the provincial side shown is the delivered record" json_is "procedure $plain" '.provincial.tenThuTuc == .mapped.tenThuTuc'
check "a delivered change leaves no mismatch for it" json_is "mismatches --key $plain --state open" '.mismatches | length == 0'

# ---- new codes on a quick pass ---------------------------------------------------
new=$(curl -sf -X POST -d '{"op":"add","count":3}' "$SIM_URL/_sim/catalog" | jq -r '.codes[]')
run_pass quick 4
for c in $new; do
	check "new procedure $c is stored by a quick pass" json_is "procedure $c" '.status == "active"'
done
check "the quick pass delivers the new procedures" sim_json /_sim/provincial/puts "[.by_code | keys[]] | length == $(($(echo "$missing" | wc -l) + 4))"

# ---- the province refuses a delivery ------------------------------------------------
sim_faults '{"error_rate": 1.0, "path": "/provincial/api/v1/thu-tuc"}'
refused=$(curl -sf -X POST -d '{"op":"add","count":1}' "$SIM_URL/_sim/catalog" | jq -r '.codes[0]')
sim_faults '{"reset": true}'
sim_faults '{"error_rate": 1.0, "service": "provincial.thu-tuc.put"}'
run_pass quick 5
check "a refused delivery is a mismatch with the province's answer" json_is "mismatches --kind catalog.delivery_failed --key $refused" '.mismatches[0].state == "open"'
check "and the procedure is reported missing provincially" json_is "mismatches --kind catalog.missing_provincial --key $refused" '.mismatches[0].state == "open"'
check "an unreachable province leaves the pass incomplete, visibly" status_is '.flows[0].last_error | test("delivery of")'
sim_faults '{"reset": true}'
run_pass full 6
check "the next full pass delivers it" sim_json /_sim/provincial/puts ".by_code[\"$refused\"] == 1"
check "and closes both mismatches" json_is "mismatches --key $refused --state open" '.mismatches | length == 0'

# ---- withdrawal -----------------------------------------------------------------
curl -sf -X POST -d "{\"op\":\"withdraw\",\"code\":\"$plain\"}" "$SIM_URL/_sim/catalog" >/dev/null
run_pass quick 7
check "a withdrawn procedure is marked, not deleted" json_is "procedure $plain" '.status == "withdrawn" and .history[0].change == "withdrawn"'
check "the province still having it is a mismatch" json_is "mismatches --kind catalog.withdrawn_provincial --key $plain" '.mismatches | length == 1'

# ---- a mismatch clears by itself ---------------------------------------------------
fix=$(jq -r '.fee[0]' "$T/seeded.json")
natfee=$(ctl_json procedure "$fix" | jq -c '.mapped.phiLePhi')
curl -sf -X POST -d "{\"op\":\"edit\",\"code\":\"$fix\",\"set\":{\"phiLePhi\":$natfee}}" "$SIM_URL/_sim/provincial" >/dev/null
run_pass full 8
check "a fixed difference is closed automatically on the next full pass" json_is "mismatches --kind catalog.fee --key $fix" '.mismatches[0].state == "resolved"'
check "with the time it cleared" json_is "mismatches --kind catalog.fee --key $fix" '.mismatches[0].state_ms > 0'

# ---- bad input never withdraws by mistake ---------------------------------------------
active=$(ctl_json procedures | jq .active)
open_before=$(ctl_json mismatches --state open --limit 10000 | jq -c '[.mismatches[].id] | sort')
curl -sf -X POST -d '{"op":"empty_list","on":true}' "$SIM_URL/_sim/catalog" >/dev/null
run_pass full 9
check "an empty national list fails the pass" status_is '.flows[0].last_error | test("empty list")'
check "and withdraws nothing" json_is procedures ".active == $active"
check "and neither opens nor closes any mismatch" json_is "mismatches --state open --limit 10000" "[.mismatches[].id] | sort == $open_before"
curl -sf -X POST -d '{"op":"empty_list","on":false}' "$SIM_URL/_sim/catalog" >/dev/null

# A list that lost a quarter of the catalogue at once is not trusted either.
session=$(curl -sf -X POST -d '{"username":"lienthong","password":"secret"}' "$SIM_URL/auth" | jq -r .session)
curl -sf -X POST -d "{\"session\":\"$session\",\"service\":\"LayDanhSachTTHC\"}" "$SIM_URL/share" |
	jq -r '.result[].MATTHC' | head -80 >"$T/shrink.txt"
while read -r c; do
	curl -sf -X POST -d "{\"op\":\"withdraw\",\"code\":\"$c\"}" "$SIM_URL/_sim/catalog" >/dev/null
done <"$T/shrink.txt"
run_pass full 10
check "a list lacking 80 of ~300 procedures fails the pass" status_is '.flows[0].last_error | test("lacks [0-9]+ of")'
check "and withdraws nothing" json_is procedures ".active == $active"
check "and neither opens nor closes any mismatch" json_is "mismatches --state open --limit 10000" "[.mismatches[].id] | sort == $open_before"
while read -r c; do
	curl -sf -X POST -d "{\"op\":\"reinstate\",\"code\":\"$c\"}" "$SIM_URL/_sim/catalog" >/dev/null
done <"$T/shrink.txt"

sim_faults '{"malformed_rate": 1.0, "service": "LayDanhSachTTHC"}'
run_pass quick 11
check "an HTML answer to the list fails the pass, visibly" status_is '.flows[0].last_error | test("JSON|html|HTML")'
check "and withdraws nothing" json_is procedures ".active == $active"
sim_faults '{"reset": true}'

curl -sf -X POST "$SIM_URL/_sim/expire-sessions" >/dev/null
logins=$(sim_stat .logins)
ok_runs=$(ctl_json status | jq '.flows[0].runs_ok')
run_pass full 12
check "an expired session is renewed once" sim_json /_sim/stats ".logins == $((logins + 1))"
check "and the pass succeeds" status_is ".flows[0].runs_ok == $((ok_runs + 1))"

sim_faults '{"rate_limit_rate": 1.0, "retry_after_s": 0, "service": "LayThuTuc"}'
run_pass full 13
check "a 429 storm leaves the pass incomplete, visibly" status_is '.flows[0].last_error | test("429")'
check "and withdraws nothing" json_is procedures ".active == $active"
check "and logs no mismatch for the records it could not fetch" json_is "mismatches --kind catalog.malformed --state open" ".mismatches | length == $(jq '.malformed | length' "$T/seeded.json")"
sim_faults '{"reset": true}'

failed_runs=$(ctl_json status | jq '.flows[0].runs_failed')
sim_faults '{"down": true}'
run_pass quick 14
check "an adapter outage fails the pass" status_is ".flows[0].runs_failed == $((failed_runs + 1))"
check "and withdraws nothing" json_is procedures ".active == $active"
check "status names the failing connector" status_is '.connectors[] | select(.name=="national") | .last_error != null'
sim_faults '{"reset": true}'

check "lienthongctl procedures prints a table" ctl procedures
check "lienthongctl mismatches prints a table" ctl mismatches --kind 'catalog.*'
daemon_stop
check "clean stop" test "$D_RC" -eq 0
finish
