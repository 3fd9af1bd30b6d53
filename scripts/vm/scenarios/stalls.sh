# Scenario "stalls" (boot D, only when asked: CGLEAK_LAB_STALLS=1 or scripts/bench.sh --lab):
# the stall benchmark (benches/stalls/, built static as /lab/bin/stalls) on this kernel, where
# move_charge_at_immigrate really moves charges. Its options come from /lab/stalls.args (one
# line, written by vm-test.sh from $CGLEAK_LAB_STALLS_ARGS), `--bench` and `--cgleak` added.
# stalls.bench: the bench exits 0 and prints a report for every size it was given. The report
#               is printed whole, each line prefixed "STALLS " (the host cuts it out of the
#               console log into logs/<run>/stalls-<kernel>.txt).
# Lab set-up, what a node has anyway: /dev/shm (cgleak's state directory in the bench) and
# /var/tmp on the ext4 lab disk, so the bench's page-cache file is reclaimable page cache on a
# block device (the initramfs root is RAM).
. /lab/lib.sh

if [ ! -x /lab/bin/stalls ]; then
    result stalls.bench NOT-RUN "no stall bench binary in the initramfs (CGLEAK_LAB_STALLS_BIN or its build missing)"
    exit 0
fi
if ! command -v cgleak >/dev/null 2>&1; then
    result stalls.bench NOT-RUN "$(cgleak_missing repair)"
    exit 0
fi
mkdir -p /dev/shm /var/tmp "$DISK/var-tmp"
mount -t tmpfs tmpfs /dev/shm
mount --bind "$DISK/var-tmp" /var/tmp
obs stalls.var_tmp "$(awk '$2 == "/var/tmp" { print $1, $3 }' /proc/mounts) free $(df -m /var/tmp | awk 'NR == 2 { print $4 }') MiB"
args=$(cat /lab/stalls.args 2>/dev/null)
: "${args:=--pods 30 --mib 0,16,48 --big-mib 512 --runs 1 --idle-ms 1000}"
obs stalls.args "$args"
obs stalls.meminfo "MemTotal=$(meminfo MemTotal)kB MemAvailable=$(meminfo MemAvailable)kB root use_hierarchy=$(cat "$MEMCG/memory.use_hierarchy")"
t0=$(uptime_s)
# shellcheck disable=SC2086 # the options are words on purpose
stalls --bench $args --cgleak /lab/bin/cgleak > /tmp/stalls.out 2> /tmp/stalls.err
rc=$?
t=$(since "$t0")
echo "STALLS-REPORT-BEGIN $KREL"
sed 's/^/STALLS /' /tmp/stalls.out
echo "STALLS-REPORT-END $KREL"
# the progress lines end in \r: one line each
tr '\r' '\n' < /tmp/stalls.err | grep -v '^[[:space:]]*$' | tail -n 20 | sed 's/^/  stderr: /'
sizes=$(grep -c '^== .* pods, .* MiB anonymous' /tmp/stalls.out)
skipped=$(grep -c '^== .*: skipped' /tmp/stalls.out)
obs stalls.time "${t}s, exit $rc, $sizes size-strategy reports, $skipped sizes skipped"
grep '^  repair time:' /tmp/stalls.out | head -n 12 | while read -r l; do obs stalls.repair "$l"; done
if [ $rc -eq 0 ] && [ "$sizes" -gt 0 ] && [ "$skipped" -eq 0 ]; then
    result stalls.bench PASS "exit 0 in ${t}s: $sizes size-strategy reports ($args)"
else
    result stalls.bench FAIL "exit $rc in ${t}s: $sizes size-strategy reports, $skipped sizes skipped: $(tr '\r' '\n' < /tmp/stalls.err | grep -v '^[[:space:]]*$' | tail -n 1)"
fi
