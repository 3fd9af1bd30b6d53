# Scenario "nokmem" (boot with cgroup.memory=nokmem).
# nokmem.kernel (no cgleak): the parameter is on the command line; kmem charges stay 0 in a
#                            cgroup whose task makes slab objects; page cache still pins memcgs.
# nokmem.diagnose (cgleak):  `cgleak diagnose --format json` reports "nokmem": true.
. /lab/lib.sh

if ! grep -q 'cgroup.memory=nokmem' /proc/cmdline; then
    result nokmem.kernel FAIL "cgroup.memory=nokmem missing from /proc/cmdline"
    exit 0
fi
mkdir -p "$MEMCG/nk"
sh -c "echo \$\$ > $MEMCG/nk/cgroup.procs; mkdir -p $DISK/nk; i=0; while [ \$i -lt 200 ]; do echo x > $DISK/nk/f\$i; i=\$((i + 1)); done"
kmem=$(cat "$MEMCG/nk/memory.kmem.usage_in_bytes" 2>&1)
usage=$(cat "$MEMCG/nk/memory.usage_in_bytes")
obs nokmem.kmem_usage "kmem.usage_in_bytes=$kmem usage_in_bytes=$usage after creating 200 files"
obs nokmem.dmesg "$(dmesg | grep -v -i 'command line' | grep -i -m2 -e nokmem -e 'kernel memory' | tr '\n' '|')"
rmdir "$MEMCG/nk"
# page cache still pins removed memcgs under nokmem
d0=$(dying)
mkdir -p "$MEMCG/nkleak"
memcg-churn pagecache "$MEMCG" "$MEMCG/nkleak" "$DISK/nk-pages" 2000 | grep '^CHURN '
d1=$(dying)
rmdir "$MEMCG/nkleak"
obs nokmem.page_cache_pins "2000 memcgs charged with one page each and removed: dying $d0 -> $d1"
if [ "$kmem" = 0 ]; then
    result nokmem.kernel PASS "nokmem on the command line, kmem charge 0 (usage $usage); page cache still pins: dying $d0 -> $d1"
else
    result nokmem.kernel FAIL "kmem.usage_in_bytes=$kmem with cgroup.memory=nokmem"
fi

if ! has_cgleak diagnose; then
    result nokmem.diagnose NOT-RUN "$(cgleak_missing diagnose)"
    exit 0
fi
cgleak diagnose --format json > /tmp/nk.json 2>&1
rc=$?
cat /tmp/nk.json
v=$(json_bool nokmem < /tmp/nk.json)
if [ "$v" = true ]; then
    result nokmem.diagnose PASS "\"nokmem\": true (exit $rc)"
else
    result nokmem.diagnose FAIL "nokmem=${v:-absent} (exit $rc)"
fi
