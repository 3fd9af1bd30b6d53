# Scenario "leak": exhaust the memcg ids with dying memcgs.
# First 3000 dying memcgs pinned by clean page cache on ext4 (they hold no id on >= 4.8
# kernels), then dying memcgs pinned by swapped-out anonymous pages (swap entries keep the id),
# until mkdir fails.
# leak.kernel  (no cgleak): mkdir fails with ENOSPC/ENOMEM, and the kernel's own dying count
#                           (/proc/cgroups num_cgroups - live dirs) equals the number made.
# leak.diagnose (cgleak):   `cgleak diagnose --format json` says leaking, dying within 1% of the
#                           truth, ids_free near 0, exit 1.
. /lab/lib.sh

base_counted=$(counted)
base_live=$(live)
base_dying=$((base_counted - base_live))
obs leak.base "counted=$base_counted live=$base_live dying=$base_dying"
obs leak.meminfo_before "MemFree=$(meminfo MemFree)kB Slab=$(meminfo Slab)kB Percpu=$(meminfo Percpu)kB"
mkdir -p "$MEMCG/leak"
# 1) dying memcgs pinned by clean page cache only (kernels >= 4.8 release their ids at offline)
npc=3000
memcg-churn pagecache "$MEMCG" "$MEMCG/leak" "$DISK/leak-pages" $npc > /tmp/churn-pc.out 2>&1
cat /tmp/churn-pc.out
pc_made=$(sed -n 's/^CHURN made=\([0-9]*\).*/\1/p' /tmp/churn-pc.out)
pc_dying=$(dying)
obs leak.pagecache "made=$pc_made kernel_dying=$pc_dying mkdir=$(mkdir_probe)"
# 2) dying memcgs pinned by swap entries (swap accounting keeps a reference on the memcg id)
obs leak.swap "$(tr '\n' ' ' < /proc/swaps) memsw_files=$(ls "$MEMCG"/memory.memsw.limit_in_bytes 2>/dev/null | wc -l)"
t0=$(uptime_s)
memcg-churn swap "$MEMCG" "$MEMCG/leak" - 70000 > /tmp/churn.out 2>/tmp/churn.err &
churn_pid=$!
while ! grep -q '^CHURN ' /tmp/churn.out && kill -0 $churn_pid 2>/dev/null; do sleep 1; done
cat /tmp/churn.out
head -n 5 /tmp/churn.err
wall=$(since "$t0")
line=$(grep '^CHURN ' /tmp/churn.out)

made=$(echo "$line" | sed -n 's/.*made=\([0-9]*\).*/\1/p')
errno=$(echo "$line" | sed -n 's/.*mkdir_errno=\([A-Za-z]*\).*/\1/p')
after_counted=$(counted)
after_live=$(live)
kdying=$((after_counted - after_live))
probe=$(mkdir_probe)
obs leak.exhaustion "errno=$errno made=$made seconds=$wall counted=$after_counted live=$after_live kernel_dying=$kdying"
obs leak.mkdir_probe "$probe"
obs leak.meminfo_after "MemFree=$(meminfo MemFree)kB Slab=$(meminfo Slab)kB Percpu=$(meminfo Percpu)kB"
if [ -f "$MEMCG/leak/memory.kmem.slabinfo" ]; then
    obs leak.slabinfo "bytes=$(wc -c < "$MEMCG/leak/memory.kmem.slabinfo") head=$(head -n 2 "$MEMCG/leak/memory.kmem.slabinfo" 2>&1 | tr '\n' '|')"
fi
truth=$((pc_dying + made))  # pc_dying includes base_dying
echo "made=$made truth=$truth errno=$errno churn_pid=$churn_pid pc_dying=$pc_dying" > /tmp/leak.env

if [ "$errno" != ENOSPC ] && [ "$errno" != ENOMEM ]; then
    result leak.kernel FAIL "mkdir never failed with ENOSPC/ENOMEM (errno=$errno made=$made)"
elif [ "$kdying" -ne "$truth" ]; then
    result leak.kernel FAIL "kernel counts $kdying dying memcgs, scenario made $made swap-pinned + $pc_dying page-cache-pinned (+$base_dying before)"
else
    result leak.kernel PASS "mkdir -> $errno after $made swap-pinned dying memcgs in ${wall}s (+$pc_dying page-cache-pinned ones that hold no id); kernel dying count $kdying matches"
fi

if ! has_cgleak diagnose; then
    result leak.diagnose NOT-RUN "$(cgleak_missing diagnose)"
    exit 0
fi
cgleak diagnose --format json > /tmp/diag.json 2>/tmp/diag.err
rc=$?
cat /tmp/diag.json /tmp/diag.err
status=$(json_str status < /tmp/diag.json)
cdying=$(json_num dying < /tmp/diag.json)
free=$(json_num ids_free < /tmp/diag.json)
detail="status=$status dying=$cdying (truth $truth) ids_free=$free exit=$rc"
case "$cdying" in ''|null) cdying=-1 ;; esac
case "$free" in ''|null) free=-1 ;; esac
diff=$((cdying - truth))
[ $diff -lt 0 ] && diff=$((-diff))
if [ "$status" = leaking ] && [ $rc -eq 1 ] && [ "$cdying" -ge 0 ] && [ $((diff * 100)) -le "$truth" ] &&
    [ "$free" -ge 0 ] && [ "$free" -le 100 ]; then
    result leak.diagnose PASS "$detail"
else
    result leak.diagnose FAIL "$detail"
fi
