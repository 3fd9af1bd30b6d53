#!/usr/bin/env bash
# Issues 5 and 13's benchmark (benches/roundtrip.rs): below this shell's own memory cgroup on
# the real kernel, build kubelet-shaped trees with real sleeping processes and time, on the same
# tree, `cgleak repair --yes` (each strategy, the release binary, with its peak RSS), the
# fewest-syscalls floor of the same round trip, the safe floor (the floor plus every read a safe
# repair cannot skip) and, up to 200 pods, the shell-out baseline (the original tool's way: a
# spawned bash per setting and pid, a spawned sh per other write and rmdir). Then the same sizes
# on the emulated node (`cgleak emulate`, no cgroup needed): repair time per pod, peak RSS and
# how they grow with size. Prints medians and the ratios against the targets (PASS/MISS).
#
#   scripts/bench.sh [PODS[,PODS...]] [RUNS] [more bench options]
#   scripts/bench.sh                  # 110 and 1000 pods, 6 and 3 runs; emulated 110 and 1000
#   scripts/bench.sh 110 2            # 110 pods, 2 runs (a quick look)
#   scripts/bench.sh 110,1000,5000    # adds 5000 pods (~17,500 cgroups), real and emulated
#   scripts/bench.sh 1000 3 --shell-runs 1 --settle-ms 1000
#   scripts/bench.sh 110 2 --emulated 110,1000,5000 --emulated-runs 1
#   CGLEAK_STALLS_ARGS="--mib 0,8,32,64 --runs 3" scripts/bench.sh   # larger stall sizes
#   CGLEAK_STALLS_ARGS=0 scripts/bench.sh                             # no stall benchmark
#   scripts/bench.sh --lab [stall bench options]   # the stall bench in the kernel lab instead
#
# --lab (anywhere among the arguments): run only the stall benchmark, inside the kernel lab's
# QEMU guests (scripts/vm-test.sh boot D: Debian's 6.1 and 5.10 cloud kernels, where
# move_charge_at_immigrate moves charges; TCG, 1 vCPU, so absolute times are inflated). It
# builds the static stall bench and cgleak, boots both kernels in parallel (~10 min) and prints
# each kernel's report, also saved as $CGLEAK_LAB_CACHE/logs/<run>/stalls-<kernel>.txt. The
# other arguments are the bench's options in the guest (default "--pods 30 --mib 0,16,48
# --big-mib 512 --runs 1 --idle-ms 1000"); CGLEAK_LAB_STALLS_MEM sets the guests' memory (MiB).
# It needs neither memory cgroup v1 nor any cgroup on the host.
#
# Needs root and a writable memory cgroup v1 (it creates cgroups only below its own one and
# removes them); exits 1 saying why otherwise, or when the machine has too few pids or memcg
# ids for a size. Run it on a quiet machine: the figures are wall times, and other work on the
# cores shows up in them (the min and max columns show the spread). The emulated nodes go to
# /dev/shm (or $CGLEAK_EMUL_TMPDIR).
set -euo pipefail
cd "$(dirname "$0")/.."

cannot() {
  echo "scripts/bench.sh: cannot run: $*" >&2
  exit 1
}

lab=0
rest=()
for a in "$@"; do
  if [ "$a" = --lab ]; then lab=1; else rest+=("$a"); fi
done
if [ "$lab" = 1 ]; then
  # Boot D alone: every cgroup is made inside the guests.
  export CGLEAK_LAB_STALLS=1 CGLEAK_LAB_GROUP_A=none CGLEAK_LAB_GROUP_B=none CGLEAK_LAB_GROUP_C=none
  [ ${#rest[@]} -eq 0 ] || export CGLEAK_LAB_STALLS_ARGS="${rest[*]}"
  exec scripts/vm-test.sh
fi

[ "$(id -u)" = 0 ] ||
  cannot "not root (uid $(id -u)): the benchmark creates memory cgroups and moves processes into them; run it as root"
grep -Eq '^[0-9]+:([^:]*,)?memory(,[^:]*)?:' /proc/self/cgroup ||
  cannot "no memory cgroup v1 hierarchy (/proc/self/cgroup has no memory controller line; a cgroup v2-only host cannot run the memcg v1 repair)"
command -v cargo >/dev/null || cannot "cargo not found (install Rust: https://rustup.rs)"
command -v sleep >/dev/null && command -v sh >/dev/null || cannot "sleep and sh are needed"

pods=${1:-110,1000}
runs=${2:-}
shift $(($# > 2 ? 2 : $#))

# cargo bench builds the benchmark and the cgleak binary with the release profile; the bench
# itself checks the cgroup side (v1 filesystem, own cgroup writable) and exits 1 with the reason.
cargo bench --bench roundtrip -- --pods "$pods" ${runs:+--runs "$runs"} "$@"

# Issue 13's stall benchmark (benches/stalls/): 110 pods whose containers hold real memory (0, 8
# and 32 MiB a container, one 1 GiB process), bystanders timed per repair phase against idle.
# $CGLEAK_STALLS_ARGS passes its options, e.g. "--mib 0,8,32,64 --runs 3" (64 MiB needs about
# 27 GiB free; a size that does not fit is skipped with the reason); "0" leaves it out.
if [ "${CGLEAK_STALLS_ARGS:-}" != 0 ]; then
  # shellcheck disable=SC2086 # the options are words on purpose
  cargo bench --bench stalls -- ${CGLEAK_STALLS_ARGS:-}
  # What the pauses of cgleak's default pace buy: the same 32 MiB migrate-back with none
  # (cgleak --pace 0 and the floor alike), against the paced figures above.
  echo
  echo "== without pauses (--pace 0), to set against the default pace above"
  cargo bench --bench stalls -- --mib 32 --strategy migrate-back --pace-us 0
fi
