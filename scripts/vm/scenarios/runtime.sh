# Scenario "runtime" (boot C): Debian bookworm's containerd, runc and dockerd on the lab kernel
# (runtime/guest.sh sets the node up), a kubelet-shaped memory tree made by the real runtimes,
# and cgleak repair on it, judged by the runtimes' own tools.
# runtime.start:      the runtime disk mounts, every enabled v1 controller is mounted, containerd
#                     and dockerd answer (ctr version, docker info), the local busybox image
#                     imports into both (ctr images import, docker load).
# runtime.containerd: ctr run (shim v2 io.containerd.runc.v2) with --cgroup
#                     /kubepods/burstable/pod<uid>/<id> and /kubepods/pod<uid>/<id> and
#                     --memory-limit, a sandbox and an app container per pod: each memcg exists
#                     with the limit and holds the task's pid (/proc/PID/cgroup agrees).
# runtime.docker:     docker run --cgroup-parent /kubepods/besteffort/pod<uid> -m: the same.
# runtime.repair:     cgleak repair --yes --strategy migrate-back on that tree: repair and verify
#                     exit 0, and in the runtimes' view every container still runs (ctr task ls
#                     RUNNING, docker ps) in its memcg; metrics, stats and exec are observed (OBS).
. /lab/lib.sh
. /lab/tree.sh
. /lab/runtime/guest.sh
CTRS=/tmp/rt-containers
: > $CTRS

# step NAME OUT CMD...: run CMD (output into OUT), record its time under TCG as OBS
# runtime.time.NAME
step() {
    sn=$1 o=$2
    shift 2
    t0=$(uptime_s)
    "$@" > "$o" 2>&1
    rc=$?
    obs "runtime.time.$sn" "$(since "$t0")s rc=$rc"
    return $rc
}

# ---- runtime.start
start_ok=no
why=""
if ! step mount /tmp/mount.out rt_mount; then
    why="cannot mount the runtime disk /dev/vdc: $(tr '\n' ' ' < /tmp/mount.out)"
else
    rt_cgroups
    obs runtime.cgroups "$(awk '$3 == "cgroup" { sub(".*/", "", $2); print $2 }' /proc/mounts | tr '\n' ' ')"
    obs runtime.packages "$(sed 's/_amd64.deb//' $RT/lab-packages | grep -E '^(containerd|runc|docker.io)_' | tr '\n' ' ')"
    if ! step containerd-start /tmp/ctrd-start.out rt_start_containerd; then
        why="containerd did not answer: $(tail -n 5 /tmp/containerd.log | tr '\n' ' ')"
    elif ! step dockerd-start /tmp/dockerd-start.out rt_start_dockerd; then
        why="dockerd did not answer: $(tail -n 5 /tmp/dockerd.log | tr '\n' ' ')"
    else
        obs runtime.versions "$(containerd --version); $(runc --version | head -n1); $(docker version -f 'docker {{.Server.Version}}' 2>&1)"
        obs runtime.docker_cgroup_driver "$(docker info -f '{{.CgroupDriver}} {{.CgroupVersion}} {{.Driver}}' 2>&1)"
        if ! step ctr-import /tmp/import.out ctr_ images import --snapshotter native $RT/lab/busybox-oci.tar; then
            why="ctr images import failed: $(tr '\n' ' ' < /tmp/import.out)"
        elif ! step docker-load /tmp/load.out docker load -i $RT/lab/busybox-oci.tar; then
            why="docker load failed: $(tr '\n' ' ' < /tmp/load.out)"
        else
            start_ok=yes
        fi
    fi
fi
if [ $start_ok = yes ]; then
    result runtime.start PASS "$(containerd --version | cut -d' ' -f3), $(runc --version | head -n1), docker $(docker version -f '{{.Server.Version}}'); images: ctr $(ctr_ images ls -q | tr '\n' ' ')docker $(docker images --format '{{.Repository}}:{{.Tag}}' | tr '\n' ' ')"
else
    result runtime.start FAIL "$why"
    tail -n 30 /tmp/containerd.log /tmp/dockerd.log 2>/dev/null
fi

# ---- the tree
# pod_cg PATH LIMIT: the pod cgroup as kubelet makes it (memory, with the pod's limit)
pod_cg() { mkdir -p "$MEMCG$1" && { [ -z "$2" ] || echo "$2" > "$MEMCG$1/memory.limit_in_bytes"; }; }

# ctr_pod PODPATH: sandbox (20 MiB) and app (100 MiB) containers made by containerd
ctr_pod() {
    for spec in sandbox:20971520 app:104857600; do
        id=$(hexid)$(hexid)
        lim=${spec#*:}
        if step "ctr-run-${spec%%:*}" /tmp/run.out ctr_container "$1/$id" "$lim" "$id"; then
            echo "ctr $id $1/$id $lim" >> $CTRS
        else
            echo "ctr run $1/$id failed: $(tr '\n' ' ' < /tmp/run.out)"
            # runc's own log (nsexec errors land there, not in ctr's message) and the kernel's
            cat /run/containerd/io.containerd.runtime.v2.task/lab/"$id"/log.json 2>/dev/null | tail -n 5
            dmesg | tail -n 5
        fi
    done
}

# docker_pod PODPATH: sandbox (20 MiB) and app (100 MiB) containers made by dockerd
docker_pod() {
    for spec in sandbox:20m:20971520 app:100m:104857600; do
        name=${spec%%:*}
        rest=${spec#*:}
        if step "docker-run-$name" /tmp/run.out docker run -d --network none --cgroup-parent "$1" \
            -m "${rest%%:*}" --name "$name" lab/busybox sleep 100000; then
            id=$(docker inspect -f '{{.Id}}' "$name")
            echo "docker $name $1/$id ${rest#*:}" >> $CTRS
        else
            echo "docker run $name failed: $(tr '\n' ' ' < /tmp/run.out)"
        fi
    done
}

# pid_of KIND ID: the container's init pid in the runtime's view
pid_of() {
    case $1 in
        ctr) ctr_pid "$2" ;;
        docker) docker inspect -f '{{.State.Pid}}' "$2" ;;
    esac
}

# check_kind KIND: every container of KIND in its memcg with its limit; prints the failures
check_kind() {
    bad=0
    while read -r kind id cg lim; do
        [ "$kind" = "$1" ] || continue
        pid=$(pid_of "$kind" "$id")
        r=$(in_cgroup "${pid:-0}" "$cg" "$lim") || { echo "$kind $id: $r"; bad=1; }
    done < $CTRS
    return $bad
}

count() { grep -c "^$1 " $CTRS; }

if [ $start_ok = yes ]; then
    uid_b=$(cat /proc/sys/kernel/random/uuid)
    uid_g=$(cat /proc/sys/kernel/random/uuid)
    uid_e=$(cat /proc/sys/kernel/random/uuid)
    pod_cg /kubepods ""
    pod_cg /kubepods/burstable ""
    pod_cg /kubepods/besteffort ""
    pod_cg /kubepods/burstable/pod$uid_b 536870912
    pod_cg /kubepods/pod$uid_g 536870912
    pod_cg /kubepods/besteffort/pod$uid_e ""
    ctr_pod /kubepods/burstable/pod$uid_b
    ctr_pod /kubepods/pod$uid_g
    docker_pod /kubepods/besteffort/pod$uid_e
    ctr_ task ls
    docker ps
    if out=$(check_kind ctr) && [ "$(count ctr)" = 4 ]; then
        result runtime.containerd PASS "4 containers (2 pods: burstable, guaranteed) in their memcgs with their limits; shims running: $(ps -o comm | grep -c containerd-shim)"
    else
        result runtime.containerd FAIL "$(count ctr) of 4 containers; $out"
    fi
    if out=$(check_kind docker) && [ "$(count docker)" = 2 ]; then
        result runtime.docker PASS "2 containers (besteffort pod) in kubepods/besteffort/pod<uid>/<id> with their limits"
    else
        result runtime.docker FAIL "$(count docker) of 2 containers; $out"
    fi
else
    result runtime.containerd FAIL "runtime.start failed"
    result runtime.docker FAIL "runtime.start failed"
fi

# ---- cgleak repair on the runtimes' tree
# observe WHEN: what the runtimes say about each container (before / after the repair)
observe() {
    while read -r kind id cg lim; do
        case $kind in
            ctr)
                # stdin from /dev/null: exec and metrics would eat the container list
                ctr_ task metrics "$id" < /dev/null > /tmp/metrics.out 2>&1
                mrc=$?
                if [ $mrc = 0 ]; then
                    m="rc=0 $(grep -m2 -E 'memory.(usage|limit)_in_bytes' /tmp/metrics.out | tr -s ' \t' ' ' | tr '\n' ';')"
                else
                    m="rc=$mrc $(head -c 200 /tmp/metrics.out | tr '\n' ' ')"
                fi
                e=$(ctr_ task exec --exec-id obs-$$ "$id" cat /proc/self/cgroup < /dev/null 2>&1 | grep ':memory:')
                obs "runtime.$1.ctr" "${id%"${id#????????}"} status=$(ctr_status "$id") metrics=[$m] exec memcg=[$e] expected=$cg" ;;
            docker)
                s=$(docker stats --no-stream --format '{{.MemUsage}}' "$id" < /dev/null 2>&1)
                e=$(docker exec "$id" cat /proc/self/cgroup < /dev/null 2>&1 | grep ':memory:')
                obs "runtime.$1.docker" "$id running=$(docker inspect -f '{{.State.Running}}' "$id") stats=[$s] exec memcg=[$e] expected=$cg" ;;
        esac
    done < $CTRS
}

if [ $start_ok != yes ]; then
    result runtime.repair FAIL "runtime.start failed"
elif ! has_cgleak repair || ! has_cgleak verify; then
    result runtime.repair NOT-RUN "$(cgleak_missing repair)"
else
    sd=/run/cgleak-rt
    observe before
    t0=$(uptime_s)
    cgleak repair --yes --allow-kubelet-running --strategy migrate-back --state-dir $sd > /tmp/repair-rt.out 2>&1
    rc=$?
    t=$(since "$t0")
    tail -n 20 /tmp/repair-rt.out
    cgleak verify --state-dir $sd > /tmp/verify-rt.out 2>&1
    vrc=$?
    tail -n 5 /tmp/verify-rt.out
    ctr_ task ls
    docker ps
    observe after
    running=$(ctr_ task ls | awk '$3 == "RUNNING"' | wc -l)
    up=$(docker ps -q | wc -l)
    bad=$({ check_kind ctr; check_kind docker; } | tr '\n' ' ')
    detail="repair exit=$rc (${t}s) verify exit=$vrc; ctr task ls RUNNING $running of $(count ctr), docker ps $up of $(count docker); in their memcgs: ${bad:-all}"
    if [ $rc = 0 ] && [ $vrc = 0 ] && [ "$(count ctr)" = 4 ] && [ "$(count docker)" = 2 ] &&
        [ "$running" = 4 ] && [ "$up" = 2 ] && [ -z "$bad" ]; then
        result runtime.repair PASS "$detail"
    else
        result runtime.repair FAIL "$detail"
    fi
fi

rt_stop
teardown
