# Guest side of the runtime lab (busybox sh, sourced after lib.sh by scenarios/runtime.sh):
# the node around containerd, runc and dockerd. The runtime disk (/dev/vdc, made by
# runtime/rootfs.sh from Debian bookworm's packages) is mounted read-only at /rt and its /usr,
# /lib and /lib64 linked into the initramfs root, so the packages' dynamic binaries find their
# loader and libraries where Debian puts them. The daemons keep their state on the ext4 lab disk
# and /run (tmpfs) and are started and ended (by pid) by the scenario.
#
# Lab artefacts, not node behaviour: the root is the initramfs (rootfs), where pivot_root(2)
# fails with EINVAL, so runc runs with --no-pivot (ctr run --no-pivot; dockerd with
# DOCKER_RAMDISK=1, which sets runc's NoPivotRoot); dockerd runs without iptables and bridge,
# containers without network; the snapshotter/storage driver is native/vfs (no overlay module
# needed). The cgroup driver is cgroupfs, as on a kubelet node with cgroupDriver: cgroupfs.
RT=/rt
CTRD_SOCK=/run/containerd/containerd.sock
DOCKER_HOST=unix:///run/docker.sock
export DOCKER_HOST
CTRD_PID=
DOCKERD_PID=
RT_IMAGE=docker.io/lab/busybox:latest

# rt_mount: the runtime disk at /rt and its files where the binaries expect them
rt_mount() {
    i=0
    while [ ! -b /dev/vdc ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    mkdir -p $RT
    mount -t ext4 -o ro /dev/vdc $RT || return 1
    for d in usr lib lib64; do [ -e /$d ] || ln -s $RT/$d /$d; done
    mkdir -p /etc /var/lib /var/run
    cp $RT/etc/ld.so.cache $RT/etc/ld.so.conf /etc/ 2>/dev/null
    echo 'root:x:0:0:root:/:/bin/sh' > /etc/passwd
    echo 'root:x:0:' > /etc/group
    : > /etc/resolv.conf
    echo '127.0.0.1 localhost' > /etc/hosts
    export PATH=/lab/bin:/bin:/usr/sbin:/usr/bin
}

# rt_cgroups: every enabled v1 controller mounted as on a cgroupfs node (cpu,cpuacct and
# net_cls,net_prio co-mounted, with their single-name links); memory is mounted by /init
rt_cgroups() {
    for c in $(awk 'NR > 1 && $4 == 1 { print $1 }' /proc/cgroups); do
        case $c in
            memory) continue ;;
            cpu | cpuacct) m=cpu,cpuacct ;;
            net_cls | net_prio) m=net_cls,net_prio ;;
            *) m=$c ;;
        esac
        if [ ! -d /sys/fs/cgroup/$m ]; then
            mkdir -p /sys/fs/cgroup/$m
            mount -t cgroup -o $m $m /sys/fs/cgroup/$m || echo "LAB-WARN cannot mount cgroup $m"
        fi
        [ "$m" != "$c" ] && [ ! -e /sys/fs/cgroup/$c ] && ln -s $m /sys/fs/cgroup/$c
    done
    true
}

ctr_() { ctr --address $CTRD_SOCK --namespace lab "$@"; }

# wait_for SECONDS CMD...: retry CMD every 0.5 s; fails after SECONDS
wait_for() {
    n=$(($1 * 2))
    shift
    while [ $n -gt 0 ]; do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
        n=$((n - 1))
    done
    return 1
}

rt_start_containerd() {
    mkdir -p /run/lab $DISK/containerd
    cat > /run/lab/containerd.toml <<TOML
version = 2
root = "$DISK/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTRD_SOCK"
TOML
    containerd --config /run/lab/containerd.toml > /tmp/containerd.log 2>&1 &
    CTRD_PID=$!
    wait_for 300 ctr --address $CTRD_SOCK version
}

rt_start_dockerd() {
    mkdir -p $DISK/docker /run/docker
    DOCKER_RAMDISK=1 dockerd --containerd=$CTRD_SOCK --data-root=$DISK/docker \
        --exec-root=/run/docker --pidfile=/run/docker.pid -H $DOCKER_HOST \
        --iptables=false --ip6tables=false --ip-masq=false --bridge=none \
        --storage-driver=vfs --exec-opt native.cgroupdriver=cgroupfs > /tmp/dockerd.log 2>&1 &
    DOCKERD_PID=$!
    wait_for 300 docker info
}

# rt_stop: end the daemons this scenario started, by pid (shims and containers first)
rt_stop() {
    for id in $(ctr_ task ls -q 2>/dev/null); do ctr_ task kill -s KILL "$id" 2>/dev/null; done
    [ -n "$DOCKERD_PID" ] && docker rm -f $(docker ps -aq) >/dev/null 2>&1
    for p in $DOCKERD_PID $CTRD_PID; do
        kill "$p" 2>/dev/null
        wait_for 30 sh -c "! kill -0 $p"
        kill -9 "$p" 2>/dev/null
    done
    true
}

# LAB_INIT: every container's init, a shell that sleeps until SIGUSR1 and then becomes the
# allocator itself (exec tail /dev/zero: busybox tail buffers a file without newlines until the
# memcg limit), so the memcg OOM kills the container's init and the container exits 137, as a
# real workload's main process does
LAB_INIT='trap "exec tail /dev/zero" USR1; sleep 100000 & wait'

# ctr_container CGPATH LIMIT ID [RUNTIME]: a container of the busybox image ($LAB_INIT) in cgroup
# CGPATH (absolute in every hierarchy, as kubelet passes it to containerd), memory limit LIMIT
# bytes, with RUNTIME (default shim v2 io.containerd.runc.v2)
ctr_container() {
    ctr_ run -d --snapshotter native --no-pivot --runtime "${4:-io.containerd.runc.v2}" \
        --cgroup "$1" --memory-limit "$2" $RT_IMAGE "$3" sh -c "$LAB_INIT"
}

# ctr_pid ID: the task's pid as containerd reports it
ctr_pid() { ctr_ task ls | awk -v id="$1" '$1 == id { print $2 }'; }
ctr_status() { ctr_ task ls | awk -v id="$1" '$1 == id { print $3 }'; }

# in_cgroup PID CGPATH LIMIT: "ok" when PID is in memory cgroup CGPATH whose limit is LIMIT
in_cgroup() {
    cg=$MEMCG$2
    if [ ! -d "$cg" ]; then echo "no memcg $2"; return 1; fi
    lim=$(cat "$cg/memory.limit_in_bytes")
    if [ "$lim" != "$3" ]; then echo "limit $lim != $3 in $2"; return 1; fi
    if ! grep -qx "$1" "$cg/cgroup.procs"; then echo "pid $1 not in $2"; return 1; fi
    mine=$(awk -F: '$2 == "memory" { print $3 }' /proc/$1/cgroup)
    if [ "$mine" != "$2" ]; then echo "pid $1 memory cgroup $mine, not $2"; return 1; fi
    echo ok
}
