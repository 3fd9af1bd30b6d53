# Scenario "remedy" (runs right after "leak", ids exhausted).
# remedy.reclaim (cgleak): `cgleak reclaim --dry-run` changes nothing; `cgleak reclaim --yes`
#                          (drop_caches) must leave mkdir working and diagnose not `leaking`.
# remedy.kernel (no cgleak): what frees the ids on this kernel. drop_caches frees the memcgs
#                          pinned by page cache; those pinned by swap entries need the swap
#                          read back (swapoff; swapon). Passes when mkdir works at the end and
#                          the dying count is back near 0, and records what each step freed.
. /lab/lib.sh
. /tmp/leak.env 2>/dev/null

before=$(dying)
probe_before=$(mkdir_probe)
obs remedy.before "dying=$before counted=$(counted) mkdir=$probe_before"

# settle: poll every 100 ms until num_cgroups stops falling for 1 s (60 s at most)
settle() {
    last=$(counted) stable=0 n=0
    while [ $stable -lt 10 ] && [ $n -lt 600 ]; do
        sleep 0.1
        c=$(counted)
        if [ "$c" -lt "$last" ]; then stable=0; last=$c; else stable=$((stable + 1)); fi
        n=$((n + 1))
    done
}

if has_cgleak reclaim; then
    cgleak reclaim --dry-run > /tmp/reclaim-dry.out 2>&1
    drc=$?
    cat /tmp/reclaim-dry.out
    mid=$(dying)
    t0=$(uptime_s)
    cgleak reclaim --yes > /tmp/reclaim.out 2>&1
    rrc=$?
    t_drop=$(since "$t0")
    cat /tmp/reclaim.out
    dropped_by=cgleak
else
    result remedy.reclaim NOT-RUN "$(cgleak_missing reclaim)"
    t0=$(uptime_s)
    sync
    echo 1 > /proc/sys/vm/drop_caches
    t_w=$(since "$t0")
    settle
    t_drop=$(since "$t0")
    obs remedy.drop_caches_write "echo 1 > drop_caches took ${t_w}s"
    dropped_by=script
fi
after_drop=$(dying)
probe_drop=$(mkdir_probe)
obs remedy.after_drop_caches "dying $before -> $after_drop in ${t_drop}s (incl. 1 s settle) by=$dropped_by mkdir=$probe_drop"

if [ "$dropped_by" = cgleak ]; then
    cgleak diagnose --format json > /tmp/diag2.json 2>&1
    status=$(json_str status < /tmp/diag2.json)
    detail="dry-run exit=$drc dying $before->$mid (dry) ->$after_drop (--yes exit=$rrc, ${t_drop}s) mkdir=$probe_drop diagnose=$status"
    if [ $drc -eq 0 ] && [ "$mid" -ge $((before * 99 / 100)) ] && [ $rrc -eq 0 ] &&
        [ "$probe_drop" = ok ] && [ -n "$status" ] && [ "$status" != leaking ]; then
        result remedy.reclaim PASS "$detail"
    else
        result remedy.reclaim FAIL "$detail"
    fi
fi

# the swap-pinned ids: read the swap back in (the workload keeps running)
swap_dev=$(awk 'NR > 1 { print $1; exit }' /proc/swaps)
t_swap=-
if [ "$probe_drop" != ok ] && [ -n "$swap_dev" ]; then
    t0=$(uptime_s)
    swapoff "$swap_dev"
    settle
    t_swap=$(since "$t0")
    swapon "$swap_dev"
fi
final=$(dying)
probe_final=$(mkdir_probe)
obs remedy.after_swapoff "dying $after_drop -> $final in ${t_swap}s (swapoff + 1 s settle) mkdir=$probe_final"
[ -n "${churn_pid:-}" ] && kill "$churn_pid" 2>/dev/null

if [ "$probe_before" = ok ]; then
    result remedy.kernel FAIL "ids were not exhausted before the remedy (leak scenario did not run?)"
elif [ "$probe_final" = ok ] && [ "$final" -lt $((before / 100 + 1)) ]; then
    result remedy.kernel PASS "drop_caches: dying $before -> $after_drop, mkdir=$probe_drop; swapoff: -> $final in ${t_swap}s, mkdir=$probe_final"
else
    result remedy.kernel FAIL "dying $before -> $after_drop (drop_caches) -> $final (swapoff), mkdir: $probe_final"
fi
sleep 0.5
rmdir "$MEMCG/leak" 2>/dev/null
rm -f "$DISK/leak-pages"
