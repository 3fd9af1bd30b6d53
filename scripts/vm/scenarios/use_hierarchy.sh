# Scenario "use_hierarchy" (5.10 only; boot without the init's use_hierarchy=1, i.e. a bare
# `mount -t cgroup -o memory` root).
# use_hierarchy.kernel (no cgleak): the root's memory.use_hierarchy is 0; a tree with mixed
#                                   values is built (kubepods/burstable switched to 1).
# use_hierarchy.repair (cgleak):    `cgleak repair --strategy migrate-back` keeps each
#                                   cgroup's value; verify exits 0.
. /lab/lib.sh
. /lab/tree.sh
mkdir -p /run
root=$(cat "$MEMCG/memory.use_hierarchy")
obs use_hierarchy.root "$root"
k=$MEMCG/kubepods
mkdir "$k"
mkdir "$k/burstable" "$k/besteffort"
echo 1 > "$k/burstable/memory.use_hierarchy"
i=0
while [ $i -lt 2 ]; do
    pod "$k/burstable" burstable
    pod "$k/besteffort" besteffort
    pod "$k" guaranteed
    i=$((i + 1))
done
c=$(find "$k/burstable" -mindepth 2 -type d | head -n1)
obs use_hierarchy.child_write0 "$( (echo 0 > "$c/memory.use_hierarchy") 2>&1 | tr '\n' ' ')value=$(cat "$c/memory.use_hierarchy")"
snapshot > /tmp/uh-before
obs use_hierarchy.dmesg "$(dmesg | grep -v -i 'command line' | grep -m1 use_hierarchy | tr -s ' ')"
values=$(sed -n 's/.*hier=\([01]\).*/\1/p' /tmp/uh-before | sort | uniq -c | tr -s ' \n' ' ')
obs use_hierarchy.values "$values(count value) over $(wc -l < /tmp/uh-before) cgroups"
if [ "$root" = 0 ] && grep -q 'hier=0' /tmp/uh-before && grep -q 'hier=1' /tmp/uh-before; then
    result use_hierarchy.kernel PASS "root use_hierarchy=0; tree values $values(count value)"
else
    result use_hierarchy.kernel FAIL "root use_hierarchy=$root; tree values $values"
fi
if has_cgleak repair && has_cgleak verify; then
    cgleak repair --yes --allow-kubelet-running --strategy migrate-back --state-dir /run/cgleak-uh > /tmp/uh.out 2>&1
    rc=$?
    tail -n 20 /tmp/uh.out
    cgleak verify --state-dir /run/cgleak-uh > /tmp/uhv.out 2>&1
    vrc=$?
    snapshot > /tmp/uh-after
    after=$(sed -n 's/.*hier=\([01]\).*/\1/p' /tmp/uh-after | sort | uniq -c | tr -s ' \n' ' ')
    if cmp -s /tmp/uh-before /tmp/uh-after; then same=yes; else same=no; diff /tmp/uh-before /tmp/uh-after | head; fi
    detail="repair exit=$rc verify exit=$vrc values before $values after $after unchanged=$same"
    if [ $rc -eq 0 ] && [ $vrc -eq 0 ] && [ $same = yes ]; then
        result use_hierarchy.repair PASS "$detail"
    else
        result use_hierarchy.repair FAIL "$detail"
    fi
else
    result use_hierarchy.repair NOT-RUN "$(cgleak_missing repair)"
fi
teardown
