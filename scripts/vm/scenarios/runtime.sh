# Scenario "runtime" (boot C): Debian bookworm's containerd, runc and dockerd on the lab kernel
# (runtime/guest.sh sets the node up), kubelet-shaped memory trees made by the real runtimes,
# and cgleak repair on them, judged by the runtimes' own tools. Three rounds, each on fresh
# containers (the previous round's removed by their runtime, so each effect is seen alone):
# migrate-back, rename, and kill -9 of the repair once the staging tree exists + resume.
# Per round: in pod kubepods/burstable/pod<uid> a sandbox (20 MiB) and an app (100 MiB) by
# containerd shim v2 (ctr run --runtime io.containerd.runc.v2 --cgroup), and an app by runtime
# v1 (io.containerd.runtime.v1.linux); an app in kubepods/pod<uid> (guaranteed, shim v2); an app
# by dockerd (--cgroup-parent kubepods/besteffort/pod<uid>). Another agent's watchers
# (memcg-event.c) on the burstable app's memcg: a usage threshold and an OOM eventfd.
# Lines (see scripts/vm/README.md for what each check shows and what is expected):
# runtime.start       the runtime disk mounts, containerd and dockerd answer, the image imports
# runtime.containerd  round 1's containerd containers in their memcgs with their limits
# runtime.docker      the same for docker's
# runtime.<strategy>  repair and verify exit 0; every container still running in the
#                     runtime's view, its init in its memcg with its limit, exec lands there
# runtime.<strategy>.checks  the runtime's stats, a limit update through the runtime, and the
#                     OOM report of a container started before and one started after the
#                     repair: each check ran and its result is the documented one
# runtime.eventfd     the threshold watcher is signalled at the repair and never again
# runtime.v1-restart  containerd restarted (by pid, shims survive) after the last round: what
#                     runtime v1 reports for an OOM afterwards
# Each step's time under TCG is an OBS runtime.time.<step> line.
. /lab/lib.sh
. /lab/tree.sh
. /lab/runtime/guest.sh
. /lab/runtime/guest-checks.sh
. /lab/runtime/guest-shims.sh
RUNTIME_LINES="containerd docker migrate-back migrate-back.spurious migrate-back.checks rename rename.spurious rename.checks kill-resume kill-resume.spurious kill-resume.checks eventfd v1-restart race claims"
CTRS=/tmp/rt-containers
: > $CTRS
# every OBS line is kept too: runtime.eventfd is judged from the rounds' lines
: > /tmp/runtime.obs
obs() {
    echo "OBS $*"
    echo "OBS $*" >> /tmp/runtime.obs
}
result() {
    n=$1 r=$2
    shift 2
    echo "SCENARIO $n $r $*"
    echo "SCENARIO $n $r $*" >> /tmp/runtime.obs
}
# The allocations must reach the memcg limit and OOM, not page out to zram (boot C needs no
# swap; docker -m allows as much swap again as memory).
swapoff -a 2>/dev/null

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


# ---- the rounds
# pod_cg PATH LIMIT: the pod cgroup as kubelet makes it (memory, with the pod's limit)
pod_cg() { mkdir -p "$MEMCG$1" && { [ -z "$2" ] || echo "$2" > "$MEMCG$1/memory.limit_in_bytes"; }; }

# start_events: containerd's event stream, all namespaces (lab: ctr, moby: docker), from now on
start_events() {
    ctr --address $CTRD_SOCK events >> /tmp/events.log 2>&1 &
    EVENTS_PID=$!
}

# new_ctr KIND ROLE PODPATH LIMIT: a containerd container of KIND (ctr: shim v2, ctr1: runtime
# v1) in PODPATH/<id>, recorded in $CTRS as "KIND ID CGPATH LIMIT ROLE"
new_ctr() {
    id=$(hexid)$(hexid)
    rt=io.containerd.runc.v2
    [ "$1" = ctr1 ] && rt=io.containerd.runtime.v1.linux
    if step "run-$1" /tmp/run.out ctr_container "$3/$id" "$4" "$id" $rt; then
        echo "$1 $id $3/$id $4 $2" >> $CTRS
    else
        echo "ctr run ($rt) $3/$id failed: $(tr '\n' ' ' < /tmp/run.out)"
        NEW_FAIL="$NEW_FAIL $1:$2"
    fi
}

# new_docker ROLE PODPATH LIMIT_BYTES: a docker container in PODPATH/<full id>
new_docker() {
    if step run-docker /tmp/run.out docker run -d --network none --cgroup-parent "$2" \
        -m "$3" --memory-swap "$(($3 * 2))" lab/busybox sh -c "$LAB_INIT"; then
        id=$(tail -n1 /tmp/run.out)
        echo "docker $id $2/$id $3 $1" >> $CTRS
    else
        echo "docker run in $2 failed: $(tr '\n' ' ' < /tmp/run.out)"
        NEW_FAIL="$NEW_FAIL docker:$1"
    fi
}

# each ROLE...: the $CTRS lines whose role is one of ROLE (all when none given)
each() {
    if [ $# = 0 ]; then cat $CTRS; return; fi
    for r in "$@"; do awk -v r="$r" '$5 == r' $CTRS; done
}

# check_memcgs ROLE...: every such container's init in its memcg with its limit; prints failures
check_memcgs() {
    each "$@" | while read -r kind id cg lim role; do
        r=$(in_cgroup "$(c_pid "$kind" "$id")" "$cg" "$lim") || echo "$kind/$role ${id%"${id#????????}"}: $r"
    done
}

# make_round: fresh pods, the round's containers (before the repair)
make_round() {
    : > $CTRS
    NEW_FAIL=""
    PB=/kubepods/burstable/pod$(cat /proc/sys/kernel/random/uuid)
    PG=/kubepods/pod$(cat /proc/sys/kernel/random/uuid)
    PE=/kubepods/besteffort/pod$(cat /proc/sys/kernel/random/uuid)
    pod_cg /kubepods ""
    pod_cg /kubepods/burstable ""
    pod_cg /kubepods/besteffort ""
    pod_cg "$PB" 536870912
    pod_cg "$PG" 536870912
    pod_cg "$PE" ""
    new_ctr ctr sandbox "$PB" 20971520
    new_ctr ctr app "$PB" 104857600
    new_ctr ctr app "$PG" 104857600
    new_ctr ctr1 app "$PB" 104857600
    [ "$1" = last ] && new_ctr ctr1 keep "$PB" 104857600
    new_docker app "$PE" 104857600
}

# end_round: the round's containers removed by their runtimes (the v1 "keep" one stays for the
# restart check), their pods' memcgs removed
end_round() {
    each sandbox app after | while read -r kind id cg lim role; do c_remove "$kind" "$id"; done
    for w in $WATCHERS; do kill "$w" 2>/dev/null; done
    WATCHERS=""
    for p in "$PG" "$PE"; do rmdir "$MEMCG$p" 2>/dev/null; done
    [ -n "$(each keep)" ] || rmdir "$MEMCG$PB" 2>/dev/null
    for d in "$MEMCG"/kubepods/besteffort/pad-*; do [ -d "$d" ] && rmdir "$d"; done
    true
}

# start_watchers R: another agent's eventfds on the burstable app's memcg: usage threshold at
# 50 MiB (idle usage is far below; the OOM allocation after the repair crosses it) and OOM
start_watchers() {
    cg=$MEMCG$(each app | awk '$1 == "ctr" { print $3; exit }')
    WATCHERS=""
    for how in 52428800 oom; do
        memcg-event "$cg" $how > "/tmp/watch-$1-$how.log" 2>&1 &
        WATCHERS="$WATCHERS $!"
    done
    wait_for 10 grep -q READY "/tmp/watch-$1-52428800.log"
}

# observe R WHEN: per container, the runtime's view: running, exec memcg, stats (OBS)
observe() {
    each | while read -r kind id cg lim role; do
        obs "runtime.$1.$2.$kind.$role" "${id%"${id#????????}"} running=$(c_running "$kind" "$id") exec-memcg-ok=$([ "$(c_exec_memcg "$kind" "$id")" = "$cg" ] && echo yes || echo "no:$(c_exec_memcg "$kind" "$id")") stats=[$(c_stats "$kind" "$id")]"
    done
}

# pad N: N empty pod cgroups, so that the repair lasts long enough to be killed mid-way
pad() {
    i=0
    while [ $i -lt "$1" ]; do mkdir -p "$MEMCG/kubepods/besteffort/pad-$i"; i=$((i + 1)); done
}

# do_repair R SD: cgleak repair (strategy R, or migrate-back killed by -9 once the staging tree
# and the journal exist, then resume); sets RRC (repair/resume exit) and KILLED
do_repair() {
    KILLED=""
    case $1 in
        kill-resume)
            cgleak -v repair --yes --allow-kubelet-running --strategy migrate-back --state-dir "$2" > "/tmp/repair-$1.out" 2>&1 &
            cpid=$!
            n=0
            while [ $n -lt 1200 ] && kill -0 $cpid 2>/dev/null; do
                extra=$(find "$MEMCG" -mindepth 1 -maxdepth 1 -type d ! -name kubepods | head -n1)
                [ -n "$extra" ] && [ -n "$(ls -A "$2" 2>/dev/null)" ] && break
                sleep 0.02
                n=$((n + 1))
            done
            if kill -9 $cpid 2>/dev/null; then
                wait $cpid 2>/dev/null
                KILLED="killed with $(find "${extra:-/nonexistent}" -type d 2>/dev/null | wc -l) cgroups staged"
                cgleak resume --yes --state-dir "$2" >> "/tmp/repair-$1.out" 2>&1
                RRC=$?
            else
                wait $cpid
                RRC=$?
                KILLED="NOT killed: repair finished first (exit $RRC)"
                RRC=99
            fi ;;
        *)
            cgleak -v repair --yes --allow-kubelet-running --strategy "$1" --state-dir "$2" > "/tmp/repair-$1.out" 2>&1
            RRC=$? ;;
    esac
}

# spurious_ooms FROM TO: TaskOOM events in [FROM, TO) per container of the round (none had a
# reason to OOM then)
spurious_ooms() {
    each | while read -r kind id cg lim role; do
        n=$(ev_count /tasks/oom "$id" "$1" "$2")
        [ "$n" != 0 ] && printf '%s/%s:%s ' "$kind" "$role" "$n"
    done
    true
}

# oom_round R: limits to 64 MiB through the runtimes, a shim v2 and a docker container started
# after the repair, then every app container driven into its memcg OOM at once; OBS per
# container: the update, TaskOOM events for it, its exit in the runtime's view
oom_round() {
    each app | while read -r kind id cg lim role; do
        u=$(c_update "$kind" "$id" 67108864)
        obs "runtime.$1.update.$kind" "${id%"${id#????????}"} $u"
        case "$u" in *limit=67108864*) ;; *) echo "$kind" >> /tmp/upd-miss-$1 ;; esac
    done
    new_ctr ctr after "$PB" 67108864
    new_docker after "$PE" 67108864
    obs "runtime.$1.after-started" "$(each after | while read -r k i c l r; do printf '%s:%s ' "$k" "$(in_cgroup "$(c_pid "$k" "$i")" "$c" "$l")"; done)"
    T_OOM=$(now_tod)
    : > /tmp/oom-allocators
    each app after | while read -r kind id cg lim role; do c_oom_start "$kind" "$id"; done
    # wait for the inits turned allocators to be killed, 60 s at most
    n=0
    while [ $n -lt 120 ]; do
        alive=0
        for p in $(cat /tmp/oom-allocators); do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
        [ $alive = 0 ] && break
        sleep 0.5
        n=$((n + 1))
    done
    [ $n -lt 120 ] || echo "allocators" >> /tmp/oom-stuck-$1
    sleep 2
    each app after | while read -r kind id cg lim role; do
        obs "runtime.$1.oom.$kind.$role" "${id%"${id#????????}"} TaskOOM=$(ev_count /tasks/oom "$id" "$T_OOM") exit-events=$(grep ' /tasks/exit ' /tmp/events.log | grep "\"$id\"" | grep -o '"exit_status":[0-9]*' | tr '\n' ' ') $(c_exit "$kind" "$id")"
    done
}

# watcher_report R: each watcher's signals relative to the repair (T0..T1) and the OOM phase
watcher_report() {
    for how in 52428800 oom; do
        f=/tmp/watch-$1-$how.log
        obs "runtime.$1.eventfd.$how" "$(awk -v a="$T0" -v b="$T1" -v o="$T_OOM" '
            /^EVENT/ { t = $2 % 86400; ph = (t < a) ? "before" : (t <= b + 5) ? "repair" : (t >= o) ? "oom" : "between"
                       n[ph]++; d = d sprintf("%s+%.3fs(%s) ", ph, t - a, $5) }
            /^READY/ { r = 1 }
            END { printf "registered=%d before=%d repair=%d between=%d oom=%d [%s]", r, n["before"], n["repair"], n["between"], n["oom"], d }' "$f")"
    done
}

# run_round R [last]: one round of strategy R (migrate-back, rename, kill-resume)
run_round() {
    rd=$1 sd=/run/cgleak-rt-$1
    rm -f /tmp/upd-miss-$rd /tmp/oom-stuck-$rd
    tr0=$(uptime_s)
    make_round "$2"
    obs "runtime.time.round.$rd.make" "$(since "$tr0")s"
    pre=$(check_memcgs)
    [ "$rd" = migrate-back ] && first_round_lines "$pre"
    shim_census "$rd.before"
    start_watchers "$rd"
    observe "$rd" before
    [ "$rd" = kill-resume ] && pad 300
    T0=$(now_tod)
    t0=$(uptime_s)
    do_repair "$rd" "$sd"
    T1=$(now_tod)
    t=$(since "$t0")
    tail -n 12 "/tmp/repair-$rd.out"
    cgleak verify --state-dir "$sd" > "/tmp/verify-$rd.out" 2>&1
    vrc=$?
    tail -n 3 "/tmp/verify-$rd.out"
    shim_census "$rd.after"
    sleep 1
    sp=$(spurious_ooms "$T0" "$(now_tod)")
    obs "runtime.$rd.spurious-TaskOOM" "during the repair and 1 s after: [$sp]"
    if [ -z "$sp" ]; then
        result "runtime.$rd.spurious" PASS "no TaskOOM for any of $(each | wc -l) containers during the repair and 1 s after (settle: $(settle_of "/tmp/repair-$rd.out"))"
    else
        result "runtime.$rd.spurious" FAIL "TaskOOM the containers never had: $sp"
    fi
    observe "$rd" after
    bad=$(check_memcgs | tr '\n' ' ')
    exec_bad=$(each | while read -r k i c l ro; do [ "$(c_exec_memcg "$k" "$i")" = "$c" ] || printf '%s/%s ' "$k" "$ro"; done)
    notrun=$(each | while read -r k i c l ro; do [ "$(c_running "$k" "$i")" = yes ] || printf '%s/%s ' "$k" "$ro"; done)
    detail="repair exit=$RRC (${t}s${KILLED:+, $KILLED}) verify exit=$vrc; $(each | wc -l) containers: not running: ${notrun:-none}; not in their memcg: ${bad:-none}; exec elsewhere: ${exec_bad:-none}"
    if [ "$RRC" = 0 ] && [ $vrc = 0 ] && [ -z "$NEW_FAIL$pre$bad$exec_bad$notrun" ]; then
        result "runtime.$rd" PASS "$detail"
    else
        result "runtime.$rd" FAIL "$detail${NEW_FAIL:+; not created:$NEW_FAIL}${pre:+; before the repair: $pre}"
    fi
    obs "runtime.time.round.$rd.repair-checks" "$(since "$tr0")s"
    oom_round "$rd"
    obs "runtime.time.round.$rd.oom" "$(since "$tr0")s"
    shim_census "$rd.after-oom"
    watcher_report "$rd"
    round_checks "$rd"
    end_round
    obs "runtime.time.round.$rd.end" "$(since "$tr0")s"
}

# settle_of OUT: what the repair's wait for the runtimes' watchers saw (its summary line)
settle_of() { grep -m1 'runtime watchers' "$1" | sed 's/.*runtime watchers: //' | cut -c1-120; }

# move_all FROM TO: every task of memcg FROM into TO
move_all() { for p in $(cat "$1/cgroup.procs"); do echo "$p" > "$2/cgroup.procs"; done; }

# race_round: the race behind the spurious TaskOOM, without cgleak: two shim v2 containers'
# memcgs replaced by hand (tasks to a side memcg, rmdir, mkdir again, tasks back), the path back
# at once ("fast") or 2 s after the rmdir ("slow"); TaskOOM counted for each
race_round() {
    : > $CTRS
    NEW_FAIL=""
    P=/kubepods/burstable/pod$(cat /proc/sys/kernel/random/uuid)
    pod_cg "$P" 536870912
    new_ctr ctr fast "$P" 104857600
    new_ctr ctr slow "$P" 104857600
    shim_census race.before
    T0=$(now_tod)
    each fast slow | while read -r kind id cg lim role; do
        d=$MEMCG$cg
        mkdir "$d.side" && echo "$lim" > "$d.side/memory.limit_in_bytes" && move_all "$d" "$d.side" && rmdir "$d"
        [ "$role" = slow ] && sleep 2
        mkdir "$d" && echo "$lim" > "$d/memory.limit_in_bytes" && move_all "$d.side" "$d" && rmdir "$d.side"
    done
    sleep 2
    shim_census race.after
    f=$(each fast | awk '{ print $2 }')
    sl=$(each slow | awk '{ print $2 }')
    d="path back at once: TaskOOM=$(ev_count /tasks/oom "$f" "$T0"); path back 2 s after the rmdir: TaskOOM=$(ev_count /tasks/oom "$sl" "$T0")"
    obs runtime.race "$d"
    if [ -n "$f" ] && [ -n "$sl" ]; then
        result runtime.race PASS "$d"
    else
        result runtime.race FAIL "containers not created:$NEW_FAIL"
    fi
    each | while read -r kind id cg lim role; do c_remove "$kind" "$id"; done
    rmdir "$MEMCG$P" 2>/dev/null
}

# first_round_lines PRE: runtime.containerd / runtime.docker from round 1's containers, and
# what /proc and the binaries tell about the runtimes
first_round_lines() {
    c=$(each | grep -c '^ctr')
    d=$(each | grep -c '^docker')
    cbad=$(echo "$1" | grep '^ctr')
    dbad=$(echo "$1" | grep '^docker')
    if [ "$c" = 4 ] && [ -z "$cbad" ]; then
        result runtime.containerd PASS "4 containers (shim v2: sandbox + app in kubepods/burstable/pod<uid>, app in kubepods/pod<uid>; runtime v1: app) in their memcgs with their limits"
    else
        result runtime.containerd FAIL "$c of 4 containers; $cbad $NEW_FAIL"
    fi
    if [ "$d" = 1 ] && [ -z "$dbad" ]; then
        result runtime.docker PASS "1 container in kubepods/besteffort/pod<uid>/<full id> with its limit"
    else
        result runtime.docker FAIL "$d of 1 containers; $dbad $NEW_FAIL"
    fi
    shim_identity
    binary_versions
}

# round_checks R: runtime.R.checks from the round's OBS (stats, update, OOM reports)
round_checks() {
    st=$(grep -c . /tmp/oom-stuck-$1 2>/dev/null)
    um=$(sort /tmp/upd-miss-$1 2>/dev/null | uniq -c | tr -s ' \n' ' ')
    d="OOM: ${st:-0} containers did not end; updates not reaching the memcg: ${um:-none}"
    if [ "${st:-0}" = 0 ]; then
        result "runtime.$1.checks" PASS "$d"
    else
        result "runtime.$1.checks" FAIL "$d"
    fi
}

# v1_restart: containerd restarted (ended by its pid; the shims survive) after the last round,
# then the runtime v1 container kept from before that round's repair driven into OOM
v1_restart() {
    k=$(each keep | awk '{ print $2 }')
    if [ -z "$k" ]; then
        result runtime.v1-restart FAIL "no runtime v1 container kept from the last round"
        return
    fi
    obs runtime.v1.containerd-fds-before-restart "$(fd_kinds "$CTRD_PID")"
    kill "$CTRD_PID"
    wait_for 30 sh -c "! kill -0 $CTRD_PID"
    kill "$EVENTS_PID" 2>/dev/null
    shims=$(shim_pids | wc -l)
    step containerd-restart /tmp/ctrd-restart.out rt_start_containerd
    start_events
    sleep 1
    obs runtime.v1.after-restart "shims alive across the restart: $shims; containerd fds $(fd_kinds "$CTRD_PID"); keep container running=$(c_running ctr1 "$k")"
    T_OOM=$(now_tod)
    : > /tmp/oom-allocators
    c_oom_start ctr1 "$k"
    n=0
    while kill -0 "$(cat /tmp/oom-allocators)" 2>/dev/null && [ $n -lt 180 ]; do sleep 0.5; n=$((n + 1)); done
    sleep 2
    o=$(ev_count /tasks/oom "$k" "$T_OOM")
    detail="containerd restarted; v1 container started before the kill-resume repair, OOM after the restart: ended=$([ $n -lt 180 ] && echo yes || echo no) TaskOOM=$o $(c_exit ctr1 "$k")"
    if [ $n -lt 180 ]; then
        result runtime.v1-restart PASS "$detail"
    else
        result runtime.v1-restart FAIL "$detail"
    fi
    c_remove ctr1 "$k"
}

# eventfd_line: runtime.eventfd from the threshold watchers of every round
eventfd_line() {
    s=""
    ok=yes
    for r in migrate-back rename kill-resume; do
        l=$(grep "^OBS runtime.$r.eventfd.52428800 " /tmp/runtime.obs | cut -d' ' -f3-)
        s="$s$r: $l; "
        case "$l" in *"repair=1 between=0 oom=0"*) ;; *) ok=no ;; esac
    done
    if [ $ok = yes ]; then
        result runtime.eventfd PASS "usage-threshold eventfd signalled once at the repair, never after (the OOM crossed it): $s"
    else
        result runtime.eventfd FAIL "$s"
    fi
}

if [ $start_ok != yes ]; then
    for l in $RUNTIME_LINES; do
        result runtime.$l FAIL "runtime.start failed"
    done
elif ! has_cgleak repair || ! has_cgleak verify || ! has_cgleak resume; then
    for l in $RUNTIME_LINES; do
        result runtime.$l NOT-RUN "$(cgleak_missing resume)"
    done
else
    start_events
    run_round migrate-back
    run_round rename
    run_round kill-resume last
    v1_restart
    eventfd_line
    race_round
    . /lab/runtime/guest-claims.sh
    claims
fi

rt_stop
kill "$EVENTS_PID" 2>/dev/null
teardown
