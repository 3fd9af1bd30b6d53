# Scenario "oom": the memory doctor against the kernel's own OOM killer (issue 12).
# For each case a pod-shaped memcg (limit 160 MiB, memory+swap 160 MiB so swap cannot absorb it)
# holds three containers, pause, app and side, each a `hog` of a chosen size and oom_score_adj,
# their memcgs created in a chosen order (the kernel scans a memcg subtree pre-order, children in
# creation order; on a tie of points the last found wins from 5.3 on, the first before).
#   oom.predict.CASE  `cgleak oom --predict` named, before the OOM, the task the kernel then killed.
#   oom.log.CASE      `cgleak oom` (from /dev/kmsg) lists that kill with the pod's uid and the
#                     container's name (sandbox when it was the pause), from node-like name files.
# The trigger is a fourth hog at oom_score_adj -1000 (never chosen) in the pod memcg, which
# allocates until one of the three dies: the victim is picked at the sizes the prediction saw.
# The kernel's records of each OOM are printed as "KMSG <case> <record>" lines (parser fixtures).
. /lab/lib.sh

LAB=$MEMCG/oomlab
NAMES=/tmp/oomlab-names
cn=0

# role_id ROLE N: the 64-hex container id of a role in case N
role_id() {
    case $1 in pause) c=a ;; app) c=b ;; *) c=c ;; esac
    printf '%s%063x' "$c" "$2"
}

# names CASE UID POD: the node's name files: kubelet's pod log directory and container links,
# containerd's CRI annotations naming the sandbox
names() {
    ns=lab
    mkdir -p "$NAMES/pods/${ns}_$3_$2/app" "$NAMES/pods/${ns}_$3_$2/side" "$NAMES/containers"
    : > "$NAMES/pods/${ns}_$3_$2/app/0.log"
    : > "$NAMES/pods/${ns}_$3_$2/side/0.log"
    for r in app side; do
        : > "$NAMES/containers/$3_${ns}_$r-$(role_id $r "$cn").log"
    done
    sb=$NAMES/state/k8s.io/$(role_id pause "$cn")
    mkdir -p "$sb"
    printf '{"annotations":{"io.kubernetes.cri.container-type":"sandbox","io.kubernetes.cri.sandbox-name":"%s","io.kubernetes.cri.sandbox-namespace":"%s","io.kubernetes.cri.sandbox-uid":"%s"}}\n' \
        "$3" "$ns" "$2" > "$sb/config.json"
}

# victim_of_predict UID < json: the predicted victim's pid for the pod memcg
victim_of_predict() {
    awk -v u="pod$1\"" '
        index($0, "\"path\"") { inpod = index($0, u) > 0; v = 0; next }
        inpod && /"victim"/ { v = 1 }
        inpod && v && /"pid"/ { gsub(/[^0-9]/, ""); print; exit }'
}

# kill_listed PID UID < json: "pod_uid container_name sandbox" of the listed kill of PID
kill_listed() {
    awk -v p="$1" '
        /"victim"/ { v = 1; next }
        v && /"pid"/ { x = $0; gsub(/[^0-9]/, "", x); hit = (x == p); v = 0; next }
        hit && /"pod_uid"/ { u = $0; sub(/.*"pod_uid": "/, "", u); sub(/".*/, "", u) }
        hit && /"container_name"/ { c = $0; sub(/.*"container_name": /, "", c); gsub(/[",]/, "", c) }
        hit && /"sandbox"/ && !/sandbox_killed/ { s = $0; sub(/.*"sandbox": /, "", s); gsub(/[",]/, "", s) }
        END { if (u != "") print u, c, s }'
}

# case_run NAME QOS ORDER MIB(pause app side) ADJ(pause app side) EXPECTED-ROLE
case_run() {
    name=$1 qos=$2 order=$3 mibs=$4 adjs=$5 expect=$6
    cn=$((cn + 1))
    uid=$(printf '%08x-0000-4000-8000-%012x' "$cn" "$cn")
    pod=oom-$name
    base=$LAB/kubepods
    [ -n "$qos" ] && base=$base/$qos
    pcg=$base/pod$uid
    mkdir -p "$pcg"
    echo 160M > "$pcg/memory.limit_in_bytes"
    [ -f "$pcg/memory.memsw.limit_in_bytes" ] && echo 160M > "$pcg/memory.memsw.limit_in_bytes"
    for r in $order; do mkdir "$pcg/$(role_id "$r" "$cn")"; done
    names "$name" "$uid" "$pod"
    set -- $mibs
    pm=$1 am=$2 sm=$3
    set -- $adjs
    pa=$1 aa=$2 sa=$3
    pids=
    for r in pause app side; do
        case $r in pause) m=$pm a=$pa ;; app) m=$am a=$aa ;; side) m=$sm a=$sa ;; esac
        sh -c "echo \$\$ > $pcg/$(role_id $r "$cn")/cgroup.procs && echo $a > /proc/self/oom_score_adj && exec hog $r $m" > "/tmp/hog-$name-$r" 2>&1 &
        eval "pid_$r=$!"
        pids="$pids $!"
    done
    for r in pause app side; do
        i=0
        while ! grep -q ready "/tmp/hog-$name-$r" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    done
    eval "exp_pid=\$pid_$expect"
    cgleak oom --predict --format json --root "$LAB" --kubepods kubepods \
        --pods-log-dir "$NAMES/pods" --containerd-state-dir "$NAMES/state" > "/tmp/predict-$name.json" 2>&1
    prc=$?
    predicted=$(victim_of_predict "$uid" < "/tmp/predict-$name.json")
    seq0=$(kmsg-dump X 0 | sed -n 's/^KMSG-LAST //p')
    sh -c "echo \$\$ > $pcg/cgroup.procs && echo -1000 > /proc/self/oom_score_adj && exec hog trigger 0 --until $pids" > "/tmp/hog-$name-trigger" 2>&1
    killed=$(sed -n 's/^HOG killed \([0-9]*\).*/\1/p' "/tmp/hog-$name-trigger")
    role=none
    for r in pause app side; do eval "[ \"\$pid_$r\" = \"$killed\" ] && role=$r"; done
    kmsg-dump "KMSG $name" "$seq0" | grep -v '^KMSG-LAST'
    obs "oom.$name" "kernel $KREL: killed $role (pid ${killed:-none}); predicted pid ${predicted:-none} (exit $prc); rule expectation $expect (pid $exp_pid); mib $mibs adj $adjs order $order"
    if [ -n "$killed" ] && [ "$predicted" = "$killed" ]; then
        result "oom.predict.$name" PASS "predicted and killed: $role pid $killed (adj $adjs, MiB $mibs, created $order)"
    else
        grep -m5 -i -e error -e '"warning"' "/tmp/predict-$name.json"
        result "oom.predict.$name" FAIL "predicted pid ${predicted:-none}, the kernel killed $role pid ${killed:-none} (exit $prc)"
    fi
    cgleak oom --format json --pods-log-dir "$NAMES/pods" --containerd-state-dir "$NAMES/state" > "/tmp/oom-$name.json" 2>&1
    orc=$?
    set -- $(kill_listed "$killed" < "/tmp/oom-$name.json")
    want=$role
    [ "$role" = pause ] && want=sandbox
    got=${2:-}
    [ "${3:-}" = true ] && got=sandbox
    if [ -n "$killed" ] && [ "${1:-}" = "$uid" ] && [ "$got" = "$want" ]; then
        result "oom.log.$name" PASS "listed: pid $killed, pod $uid, container $got (exit $orc)"
    else
        result "oom.log.$name" FAIL "kill of pid ${killed:-none} listed as pod '${1:-}' container '$got', want $uid $want (exit $orc)"
    fi
    for p in $pids; do kill -9 "$p" 2>/dev/null; done
    wait 2>/dev/null
    for r in pause app side; do rmdir "$pcg/$(role_id $r "$cn")"; done
    rmdir "$pcg"
}

if ! has_cgleak oom; then
    for c in guaranteed burstable adj tie-pause-first tie-pause-last; do
        result "oom.predict.$c" NOT-RUN "$(cgleak_missing oom)"
        result "oom.log.$c" NOT-RUN "$(cgleak_missing oom)"
    done
    exit 0
fi
mkdir -p "$LAB"
# 5.10: the bare root has use_hierarchy=0; a pod's limit must cover its containers
[ -f "$LAB/memory.use_hierarchy" ] && echo 1 > "$LAB/memory.use_hierarchy" 2>/dev/null
mkdir -p "$LAB/kubepods/burstable"

# seed 000's case: a Guaranteed pod, every task at -998. < 5.9 all floor to 1 and the first
# found (pause) dies; from 5.9 the scores stay apart and the largest (app) dies.
case_run guaranteed "" "pause app side" "1 60 10" "-998 -998 -998" app
case_run burstable burstable "pause app side" "1 60 10" "999 999 999" app
# the adj term outweighs the app's size: side (10 MiB at 999) over app (60 MiB at 2)
case_run adj burstable "pause app side" "1 60 10" "999 2 999" side
# equal tasks: the scan order decides. >= 5.3 the last found wins: app when the pause memcg
# was made first, the pause when it was made last.
case_run tie-pause-first "" "pause app side" "30 30 5" "-998 -998 -998" app
case_run tie-pause-last "" "app side pause" "30 30 5" "-998 -998 -998" pause
rmdir "$LAB/kubepods/burstable" "$LAB/kubepods" "$LAB" 2>/dev/null
