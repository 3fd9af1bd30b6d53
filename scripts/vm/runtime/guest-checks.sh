# Guest side of the runtime lab (busybox sh, sourced after runtime/guest.sh): what each check
# asks of one container, through the runtime's own tool. A container is named by KIND ID:
# KIND ctr (containerd, shim v2 io.containerd.runc.v2), ctr1 (runtime v1
# io.containerd.runtime.v1.linux: containerd-shim, the OOM watcher in the daemon) or docker.
# Every function prints one short value for an OBS line.

# c_pid KIND ID: the container's init pid in the runtime's view
c_pid() {
    case $1 in
        ctr | ctr1) ctr_pid "$2" ;;
        docker) docker inspect -f '{{.State.Pid}}' "$2" 2>/dev/null ;;
    esac
}

# c_running KIND ID: "yes" when the runtime says the container runs
c_running() {
    case $1 in
        ctr | ctr1) [ "$(ctr_status "$2")" = RUNNING ] && echo yes || echo "no($(ctr_status "$2"))" ;;
        docker) [ "$(docker inspect -f '{{.State.Running}}' "$2" 2>/dev/null)" = true ] && echo yes || echo no ;;
    esac
}

# c_exec KIND ID CMD...: CMD run inside the container by the runtime (stdin from /dev/null:
# exec would eat the caller's input)
c_exec() {
    k=$1 i=$2
    shift 2
    case $k in
        ctr | ctr1) ctr_ task exec --exec-id "x$(hexid)" "$i" "$@" < /dev/null ;;
        docker) docker exec "$i" "$@" < /dev/null ;;
    esac
}

# c_exec_memcg KIND ID: the memory cgroup a process exec'd into the container lands in
c_exec_memcg() { c_exec "$1" "$2" cat /proc/self/cgroup 2>&1 | awk -F: '$2 == "memory" { print $3 }'; }

# c_memcg PID: the memory cgroup of PID
c_memcg() { awk -F: '$2 == "memory" { print $3 }' "/proc/$1/cgroup" 2>/dev/null; }

# c_stats KIND ID: the runtime's memory stats (ctr task metrics / docker stats)
c_stats() {
    case $1 in
        ctr | ctr1)
            if ctr_ task metrics "$2" < /dev/null > /tmp/metrics.out 2>&1; then
                echo "ok $(grep -m1 -E 'memory.usage_in_bytes' /tmp/metrics.out | tr -s ' \t' ' ')"
            else
                echo "FAILS:$(head -c 80 /tmp/metrics.out | tr '\n' ' ')"
            fi ;;
        docker) docker stats --no-stream --format '{{.MemUsage}}' "$2" < /dev/null 2>&1 | tr -d ' ' ;;
    esac
}

# c_update KIND ID BYTES: set the memory limit through the runtime (ctr 1.6: `task update
# has none: runc update with containerd's runc root; docker update -m), then print "rc=N limit=<memory.limit_in_bytes of the memcg holding the init>"
c_update() {
    case $1 in
        ctr | ctr1)
            # ctr 1.6 has no `task update` ("No help topic for 'update'"): runc itself, with the
            # state root containerd's shims use (/run/containerd/runc/<namespace>)
            runc --root /run/containerd/runc/lab update --memory "$3" "$2" > /tmp/upd.out 2>&1 ;;
        docker) docker update -m "$3" --memory-swap "$(($3 * 2))" "$2" > /tmp/upd.out 2>&1 ;;
    esac
    urc=$?
    cg=$(c_memcg "$(c_pid "$1" "$2")")
    echo "rc=$urc limit=$(cat "$MEMCG$cg/memory.limit_in_bytes" 2>/dev/null) $(head -c 80 /tmp/upd.out | tr '\n' ' ')"
}

# c_oom_start KIND ID: the container's init becomes the allocator (SIGUSR1, see LAB_INIT in
# runtime/guest.sh): its memcg OOM kills the init, the pid namespace goes with it and the
# container exits 137; the init's pid is recorded in /tmp/oom-allocators
c_oom_start() {
    p=$(c_pid "$1" "$2")
    kill -USR1 "$p"
    echo "$p" >> /tmp/oom-allocators
}

# c_exit KIND ID: how the container ended in the runtime's view
c_exit() {
    case $1 in
        ctr | ctr1) echo "status=$(ctr_status "$2")" ;;
        docker) docker inspect -f 'OOMKilled={{.State.OOMKilled}} ExitCode={{.State.ExitCode}} running={{.State.Running}}' "$2" 2>&1 ;;
    esac
}

# c_remove KIND ID: the container gone, by its runtime
c_remove() {
    case $1 in
        ctr | ctr1)
            ctr_ task kill -s KILL "$2" > /dev/null 2>&1
            wait_for 20 sh -c "! ctr --address $CTRD_SOCK --namespace lab task ls | grep -q '^$2 .*RUNNING'"
            ctr_ task delete "$2" > /dev/null 2>&1
            ctr_ container delete "$2" > /dev/null 2>&1 ;;
        docker) docker rm -f "$2" > /dev/null 2>&1 ;;
    esac
}

# ev_count TOPIC ID [FROM [TO]]: events of TOPIC for container ID in containerd's event stream
# (ctr events, running since containerd started), optionally only those whose time (seconds
# of the UTC day) lies in [FROM, TO)
ev_count() {
    grep " $1 " /tmp/events.log | grep "\"$2\"" | awk -v f="${3:-0}" -v t="${4:-999999}" '
        { split($2, c, ":"); s = c[1] * 3600 + c[2] * 60 + c[3]; if (s >= f && s < t) n++ }
        END { print n + 0 }'
}

# ev_first TOPIC ID: the time (seconds of the UTC day) of the first TOPIC event for ID
ev_first() {
    grep " $1 " /tmp/events.log | grep "\"$2\"" | head -n1 |
        awk '{ split($2, c, ":"); printf "%.3f", c[1] * 3600 + c[2] * 60 + c[3] }'
}

# now_tod: now, in seconds of the UTC day (the clock of ctr events' timestamps)
now_tod() { memcg-event now | awk '{ printf "%.3f", $1 % 86400 }'; }
