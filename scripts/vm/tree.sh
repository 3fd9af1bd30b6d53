# Kubelet-shaped trees for the repair scenarios (sourced after lib.sh).
# kubepods/pod<uid>/<ctr> (Guaranteed), kubepods/{burstable,besteffort}/pod<uid>/<ctr>, each
# pod with its pause container; limits, memsw, soft limits, swappiness as runc sets them; real
# busybox sleep processes; some page cache on the ext4 disk; one container holding 20 MiB anon
# (memcg-churn hold: a busybox `x=$(head -c 20000000 /dev/zero | tr ...)` holder lost its
# charge in the lab, so a tiny static helper faults the memory in instead).
PIDS=/tmp/lab-pids
ANON_CG=

hexid() { tr -d '-' < /proc/sys/kernel/random/uuid; }
# setv CG FILE VALUE: write when the file exists (memsw needs swap accounting)
setv() { [ -f "$1/$2" ] && echo "$3" > "$1/$2"; }

# spawn CG KIND: start a process in CG (sleep | pagecache | anon)
spawn() {
    cg=$1 kind=$2
    case $kind in
        sleep) sh -c "echo \$\$ > $cg/cgroup.procs && exec sleep 100000" & ;;
        pagecache)
            n=$(hexid)
            sh -c "echo \$\$ > $cg/cgroup.procs && dd if=/dev/zero of=$DISK/pc-$n bs=64k count=16 2>/dev/null && cat $DISK/pc-$n > /dev/null && exec sleep 100000" & ;;
        anon)
            ANON_READY=/tmp/anon-ready-$(hexid)
            sh -c "echo \$\$ > $cg/cgroup.procs && exec memcg-churn hold 20971520 $ANON_READY" & ;;
    esac
    echo $! >> $PIDS
}

# container PODCG LIMIT KIND
container() {
    c="$1/$(hexid)$(hexid)"
    mkdir "$c"
    setv "$c" memory.limit_in_bytes "$2"
    setv "$c" memory.memsw.limit_in_bytes "$2"
    setv "$c" memory.soft_limit_in_bytes $(($2 / 2))
    setv "$c" memory.swappiness 0
    spawn "$c" "$3"
    [ "$3" = anon ] && ANON_CG=$c
    true
}

# pod PARENT QOS: a pod with its pause container and two containers
pod() {
    p="$1/pod$(cat /proc/sys/kernel/random/uuid)"
    mkdir "$p"
    [ "$2" != besteffort ] && setv "$p" memory.limit_in_bytes 536870912
    container "$p" 104857600 sleep
    container "$p" 209715200 "${3:-sleep}"
    container "$p" 157286400 "${4:-sleep}"
}

# build_tree NPODS [anon]: NPODS pods spread over the three QoS classes
build_tree() {
    k=$MEMCG/kubepods
    mkdir "$k" "$k/burstable" "$k/besteffort"
    setv "$k" memory.limit_in_bytes 1887436800
    i=0
    while [ $i -lt "$1" ]; do
        case $((i % 3)) in
            0) pod "$k" guaranteed pagecache ;;
            1) pod "$k/burstable" burstable ;;
            2) pod "$k/besteffort" besteffort pagecache ;;
        esac
        i=$((i + 1))
    done
    if [ "${2:-}" = anon ]; then
        pod "$k/burstable" burstable anon
        wait_anon
    fi
}

usage() { cat "$1/memory.usage_in_bytes" 2>/dev/null || echo missing; }

# wait until the anon holder has its 20 MB string (the command substitution done; 60 s at most)
wait_anon() {
    n=0
    while { [ ! -e "$ANON_READY" ] || [ "$(usage "$ANON_CG")" -lt 20000000 ]; } && [ $n -lt 600 ]; do
        sleep 0.1
        n=$((n + 1))
    done
    sleep 0.2
}

# snapshot: one line per cgroup of kubepods: settings and sorted pids (independent of cgleak)
snapshot() {
    (cd "$MEMCG" && find kubepods -type d | sort | while read -r cg; do
        printf '%s lim=%s memsw=%s soft=%s swp=%s hier=%s oom=%s pids=%s\n' "$cg" \
            "$(cat "$cg/memory.limit_in_bytes")" \
            "$(cat "$cg/memory.memsw.limit_in_bytes" 2>/dev/null || echo -)" \
            "$(cat "$cg/memory.soft_limit_in_bytes")" \
            "$(cat "$cg/memory.swappiness")" \
            "$(cat "$cg/memory.use_hierarchy")" \
            "$(sed -n 's/^oom_kill_disable //p' "$cg/memory.oom_control")" \
            "$(sort -n "$cg/cgroup.procs" | tr '\n' ',')"
    done)
}

# teardown: kill the processes this scenario started (by pid) and remove every cgroup but the
# root, leaf first
teardown() {
    if [ -f $PIDS ]; then
        for p in $(cat $PIDS); do
            for c in $(cat /proc/$p/task/*/children 2>/dev/null); do kill -9 "$c" 2>/dev/null; done
            kill -9 "$p" 2>/dev/null
        done
        rm -f $PIDS
    fi
    # anything else left in a test cgroup was started by these scenarios too
    for f in $(find "$MEMCG" -mindepth 2 -name cgroup.procs); do
        for p in $(cat "$f"); do kill -9 "$p" 2>/dev/null; done
    done
    wait 2>/dev/null
    sleep 0.2
    find "$MEMCG" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null
    rm -f "$DISK"/pc-*
    ANON_CG=
}
