# Scenario "repair" on a kubelet-shaped tree (see tree.sh).
# repair.kernel (no cgleak):  move_charge_at_immigrate=3 is accepted and an anon holder's
#                             charge follows it to another memcg (what migrate-back relies on).
# repair.migrate-back, repair.rename (cgleak): `cgleak repair --yes --allow-kubelet-running
#                             --strategy S` on a fresh tree, then `cgleak verify` exits 0, the
#                             tree (settings, pids) is unchanged by the scenario's own snapshot,
#                             and the anon container's usage is still non-trivial.
# repair.kill-resume (cgleak): kill -9 of cgleak mid-repair on a big tree, then `cgleak resume
#                             --yes`, `cgleak verify`.
. /lab/lib.sh
. /lab/tree.sh
mkdir -p /run

# ---- kernel facts, no cgleak
teardown
mkdir "$MEMCG/lab-src" "$MEMCG/lab-dst"
spawn "$MEMCG/lab-src" anon
ANON_CG=$MEMCG/lab-src
wait_anon
src0=$(usage "$MEMCG/lab-src")
if err=$(echo 3 2>&1 > "$MEMCG/lab-dst/memory.move_charge_at_immigrate"); then mc=accepted; else mc="rejected: $err"; fi
for p in $(cat "$MEMCG/lab-src/cgroup.procs"); do echo "$p" > "$MEMCG/lab-dst/cgroup.procs"; done
sleep 0.5
src1=$(usage "$MEMCG/lab-src")
dst1=$(usage "$MEMCG/lab-dst")
obs repair.move_charge "write 3: $mc; src usage $src0 -> $src1, dst usage -> $dst1"
obs repair.move_charge_dmesg "$(dmesg | grep -m1 -i move_charge | tr -s ' ')"
obs repair.kmem_limit_write "$(mkdir "$MEMCG/lab-kmem" && { echo 1073741824 > "$MEMCG/lab-kmem/memory.kmem.limit_in_bytes" && echo accepted; } 2>&1 | tr '\n' ' '; dmesg | grep -m1 -i 'kmem.limit_in_bytes' | tr -s ' ')"
obs repair.memsw "memsw files: $(ls "$MEMCG"/memory.memsw.* 2>/dev/null | wc -l); root use_hierarchy=$(cat "$MEMCG/memory.use_hierarchy")"
teardown
if [ "$mc" = accepted ] && [ "$dst1" -gt 10000000 ]; then
    result repair.kernel PASS "move_charge_at_immigrate=3 accepted; anon charge moved: src $src0 -> $src1, dst $dst1"
else
    result repair.kernel FAIL "move_charge $mc; src $src0 -> $src1, dst $dst1"
fi

# ---- cgleak
run_strategy() {
    s=$1 sd=/run/cgleak-$1
    build_tree 6 anon
    snapshot > /tmp/before-$s
    anon_rel=${ANON_CG#"$MEMCG"/}
    u0=$(usage "$ANON_CG")
    echo "  tree: $(wc -l < /tmp/before-$s) cgroups, anon container $anon_rel usage $u0"
    t0=$(uptime_s)
    cgleak repair --yes --allow-kubelet-running --strategy "$s" --state-dir "$sd" > /tmp/repair-$s.out 2>&1
    rc=$?
    t=$(since "$t0")
    tail -n 30 /tmp/repair-$s.out
    cgleak verify --state-dir "$sd" > /tmp/verify-$s.out 2>&1
    vrc=$?
    tail -n 10 /tmp/verify-$s.out
    snapshot > /tmp/after-$s
    u1=$(usage "$MEMCG/$anon_rel")
    if cmp -s /tmp/before-$s /tmp/after-$s; then same=yes; else same=no; diff /tmp/before-$s /tmp/after-$s | head -n 10; fi
    detail="repair exit=$rc (${t}s) verify exit=$vrc tree unchanged=$same anon usage before=$u0 after=$u1"
    if [ $rc -eq 0 ] && [ $vrc -eq 0 ] && [ $same = yes ] && [ "$u1" != missing ] && [ "$u1" -gt 10000000 ]; then
        result "repair.$s" PASS "$detail"
    else
        result "repair.$s" FAIL "$detail"
    fi
    teardown
}

if has_cgleak repair && has_cgleak verify; then
    run_strategy migrate-back
    run_strategy rename
else
    why=$(cgleak_missing repair)
    result repair.migrate-back NOT-RUN "$why"
    result repair.rename NOT-RUN "$why"
fi

if has_cgleak repair && has_cgleak resume && has_cgleak verify; then
    sd=/run/cgleak-kill
    build_tree 60
    snapshot > /tmp/before-kill
    echo "  tree: $(wc -l < /tmp/before-kill) cgroups"
    cgleak repair --yes --allow-kubelet-running --strategy migrate-back --state-dir $sd > /tmp/repair-kill.out 2>&1 &
    cpid=$!
    # kill once the migration has visibly started: a new top-level cgroup (the staging tree)
    n=0
    while [ $n -lt 600 ] && kill -0 $cpid 2>/dev/null; do
        extra=$(find "$MEMCG" -mindepth 1 -maxdepth 1 -type d ! -name kubepods | head -n1)
        [ -n "$extra" ] && [ -n "$(ls -A $sd 2>/dev/null)" ] && break
        sleep 0.05
        n=$((n + 1))
    done
    sleep 0.3
    if kill -0 $cpid 2>/dev/null; then
        kill -9 $cpid
        wait $cpid 2>/dev/null
        staged=$(find "${extra:-/nonexistent}" -type d 2>/dev/null | wc -l)
        echo "  killed cgleak (pid $cpid) with $staged cgroups in ${extra:-no staging tree}"
        cgleak resume --yes --state-dir $sd > /tmp/resume.out 2>&1
        rrc=$?
        tail -n 20 /tmp/resume.out
        cgleak verify --state-dir $sd > /tmp/verify-kill.out 2>&1
        vrc=$?
        tail -n 10 /tmp/verify-kill.out
        snapshot > /tmp/after-kill
        if cmp -s /tmp/before-kill /tmp/after-kill; then same=yes; else same=no; diff /tmp/before-kill /tmp/after-kill | head -n 10; fi
        detail="killed mid-repair ($staged cgroups staged in ${extra#"$MEMCG"/}); resume exit=$rrc verify exit=$vrc tree unchanged=$same"
        if [ $rrc -eq 0 ] && [ $vrc -eq 0 ] && [ $same = yes ]; then
            result repair.kill-resume PASS "$detail"
        else
            result repair.kill-resume FAIL "$detail"
        fi
    else
        wait $cpid
        result repair.kill-resume FAIL "cgleak repair finished (exit $?) before it could be killed: enlarge the tree"
        tail -n 20 /tmp/repair-kill.out
    fi
    teardown
else
    result repair.kill-resume NOT-RUN "$(cgleak_missing resume)"
fi
