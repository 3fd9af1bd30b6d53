# Shared helpers of the guest scenarios (busybox sh).
MEMCG=/sys/fs/cgroup/memory
DISK=/mnt/disk
KREL=$(uname -r)

# result NAME PASS|FAIL|NOT-RUN DETAIL...: the only lines the host judges.
result() {
    n=$1 r=$2
    shift 2
    echo "SCENARIO $n $r $*"
}
obs() { echo "OBS $*"; }
say() { echo "  [$(uptime_s)] $*"; }

uptime_s() { cut -d' ' -f1 /proc/uptime; }
# seconds (with 2 decimals) since $1, a value of uptime_s
since() { awk -v a="$1" -v b="$(uptime_s)" 'BEGIN { printf "%.2f", b - a }'; }

# /proc/cgroups num_cgroups of memory (live + dying on >= 3.16)
counted() { awk '$1 == "memory" { print $3 }' /proc/cgroups; }
# live memcgs: cgroup directories of the whole hierarchy, root included
live() { find "$MEMCG" -type d | wc -l; }
dying() { echo $(( $(counted) - $(live) )); }

# has_cgleak CMD: the cgleak binary exists and its --help lists CMD
has_cgleak() {
    command -v cgleak >/dev/null 2>&1 || return 1
    cgleak --help 2>/dev/null | grep -Eq "^[[:space:]]+$1([[:space:]]|\$)"
}
# cgleak_missing CMD: why cgleak CMD cannot run (for NOT-RUN details)
cgleak_missing() {
    if ! command -v cgleak >/dev/null 2>&1; then
        echo "no cgleak binary in the initramfs (build failed or skipped)"
    else
        echo "cgleak --help does not list the '$1' command yet"
    fi
}

# json_num KEY < json: first numeric value of "KEY": N (whitespace tolerant); "null" for null
json_num() {
    sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\|null\).*/\1/p" | head -n1
}
json_str() {
    sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" | head -n1
}
json_bool() {
    sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\(true\|false\).*/\1/p" | head -n1
}

# mkdir_probe: try to create and remove one memcg; prints "ok" or the error text
mkdir_probe() {
    if out=$(mkdir "$MEMCG/lab-probe" 2>&1); then
        rmdir "$MEMCG/lab-probe"
        echo ok
    else
        echo "$out" | sed 's/^mkdir: //'
    fi
}

meminfo() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }
