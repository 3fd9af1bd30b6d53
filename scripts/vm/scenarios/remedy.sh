# Scenario "remedy" (runs right after "leak", ids exhausted).
# remedy.reclaim (cgleak): `cgleak reclaim --dry-run --swap-cycle` changes nothing;
#                          `cgleak reclaim --yes` (drop_caches) frees the page-cache-pinned dying
#                          memcgs and, on these kernels (>= 4.8), no id: mkdir still fails and
#                          cgleak points at --swap-cycle; `cgleak reclaim --yes --swap-cycle`
#                          (swapoff + swapon of each area) brings mkdir back, leaves the swap
#                          area in use again, and diagnose is no longer `leaking`.
# remedy.kernel (no cgleak): what frees the ids on this kernel, recorded step by step: the page
#                          cache drop, then reading the swap back. Without cgleak the script
#                          does both steps itself. Passes when mkdir failed before, works at the
#                          end, and the dying count is back near 0.
. /lab/lib.sh
. /tmp/leak.env 2>/dev/null

before=$(dying)
probe_before=$(mkdir_probe)
swap_dev=$(awk 'NR > 1 { print $1; exit }' /proc/swaps)
obs remedy.before "dying=$before counted=$(counted) mkdir=$probe_before swap=$swap_dev"

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

if has_cgleak reclaim && cgleak reclaim --help 2>/dev/null | grep -q -- --swap-cycle; then
    by=cgleak
    cgleak reclaim --dry-run --swap-cycle > /tmp/reclaim-dry.out 2>&1
    drc=$?
    cat /tmp/reclaim-dry.out
    mid=$(dying)
    t0=$(uptime_s)
    cgleak reclaim --yes > /tmp/reclaim.out 2>&1
    rrc=$?
    t_drop=$(since "$t0")
    cat /tmp/reclaim.out
    after_drop=$(dying)
    probe_drop=$(mkdir_probe)
    hint=no
    grep -q -- '--swap-cycle' /tmp/reclaim.out && hint=yes
    obs remedy.after_drop_caches "dying $before -> $after_drop in ${t_drop}s (incl. 1 s settle) by=cgleak mkdir=$probe_drop swap-cycle hint=$hint"
    t0=$(uptime_s)
    cgleak reclaim --yes --swap-cycle > /tmp/reclaim-swap.out 2>&1
    src=$?
    t_swap=$(since "$t0")
    cat /tmp/reclaim-swap.out
else
    result remedy.reclaim NOT-RUN "$(cgleak_missing 'reclaim --swap-cycle')"
    by=script
    t0=$(uptime_s)
    sync
    echo 1 > /proc/sys/vm/drop_caches
    settle
    t_drop=$(since "$t0")
    after_drop=$(dying)
    probe_drop=$(mkdir_probe)
    obs remedy.after_drop_caches "dying $before -> $after_drop in ${t_drop}s (incl. 1 s settle) by=script mkdir=$probe_drop"
    t_swap=-
    if [ "$probe_drop" != ok ] && [ -n "$swap_dev" ]; then
        t0=$(uptime_s)
        swapoff "$swap_dev"
        settle
        t_swap=$(since "$t0")
        swapon "$swap_dev"
    fi
fi
final=$(dying)
probe_final=$(mkdir_probe)
swap_after=$(awk 'NR > 1 { print $1; exit }' /proc/swaps)
obs remedy.after_swap_cycle "dying $after_drop -> $final in ${t_swap}s (swapoff + swapon + 1 s settle) by=$by mkdir=$probe_final swap in use: ${swap_after:-none}"

if [ "$by" = cgleak ]; then
    cgleak diagnose --format json > /tmp/diag2.json 2>&1
    status=$(json_str status < /tmp/diag2.json)
    pc=${pc_dying:-0}
    detail="dry-run exit=$drc dying $before->$mid (dry); drop: exit=$rrc ->$after_drop (${t_drop}s) mkdir=$probe_drop hint=$hint; swap cycle: exit=$src ->$final (${t_swap}s) mkdir=$probe_final swap=${swap_after:-none}; diagnose=$status"
    # The drop must free (nearly) every page-cache-pinned one; on >= 4.8 it frees no id, so
    # mkdir may still fail and cgleak must then point at --swap-cycle.
    drop_ok=no
    if [ $rrc -eq 0 ] && [ "$after_drop" -le $((before - pc * 99 / 100)) ]; then
        if [ "$probe_drop" = ok ] || [ "$hint" = yes ]; then drop_ok=yes; fi
    fi
    if [ $drc -eq 0 ] && [ "$mid" -ge $((before * 99 / 100)) ] && [ $drop_ok = yes ] &&
        [ $src -eq 0 ] && [ "$probe_final" = ok ] && [ "$swap_after" = "$swap_dev" ] &&
        [ -n "$status" ] && [ "$status" != leaking ]; then
        result remedy.reclaim PASS "$detail"
    else
        result remedy.reclaim FAIL "$detail"
    fi
fi
[ -n "${churn_pid:-}" ] && kill "$churn_pid" 2>/dev/null

if [ "$probe_before" = ok ]; then
    result remedy.kernel FAIL "ids were not exhausted before the remedy (leak scenario did not run?)"
elif [ "$probe_final" = ok ] && [ "$final" -lt $((before / 100 + 1)) ]; then
    result remedy.kernel PASS "drop_caches: dying $before -> $after_drop, mkdir=$probe_drop; swap read back: -> $final in ${t_swap}s, mkdir=$probe_final (by $by)"
else
    result remedy.kernel FAIL "dying $before -> $after_drop (drop_caches) -> $final (swap cycle by $by), mkdir: $probe_final"
fi
sleep 0.5
rmdir "$MEMCG/leak" 2>/dev/null
rm -f "$DISK/leak-pages"
