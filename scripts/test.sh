#!/usr/bin/env bash
# Every test of cgleak: format, lints, unit and integration tests (emulated cgroupfs, CLI, real
# kernel below this process's own memory cgroup), the Ansible role (scripts/ansible-test.sh), then
# the kernel lab (5.10 and 6.1 under QEMU;
# CGLEAK_LAB=0 skips it).
# Prints how many real-kernel tests ran and why any did not.
set -euo pipefail
cd "$(dirname "$0")/.."

real_log=$(mktemp /tmp/cgleak-real-XXXXXX)
trap 'rm -f "$real_log"' EXIT
export CGLEAK_REAL_LOG="$real_log"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
log=/tmp/cgleak-test.log
set +e
cargo test --no-fail-fast --all-targets 2>&1 | tee "$log" |
  grep --line-buffered -E '^(test result|running|     Running|---- )|panicked|SKIP |interruption points'
status=${PIPESTATUS[0]}
set -e
passed=$(grep -Eo '[0-9]+ passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '[0-9]+ failed' "$log" | awk '{s+=$1} END {print s+0}')
ran=$(grep -c '^RAN ' "$real_log" || true)
skipped=$(grep -c '^SKIP ' "$real_log" || true)
echo "== real-kernel tests: $ran ran, $skipped skipped"
if [ "$skipped" -gt 0 ]; then
  grep '^SKIP ' "$real_log" | sort -u | head -20
fi
if [ "$ran" -eq 0 ]; then
  echo "!! NO REAL-KERNEL TEST RAN on this machine (see the reasons above); only the emulation was tested"
fi
if [ "$status" -ne 0 ]; then
  grep -A30 '^failures:' "$log" | head -80 || true
  echo "tests: $passed passed, $failed failed"
  exit "$status"
fi

echo "== deploy/ansible: the role and playbook run for real on emulated nodes (scripts/ansible-test.sh)"
if ! scripts/ansible-test.sh; then
  echo "tests: $passed passed, $failed failed; the Ansible tests FAILED (see above)"
  exit 1
fi

lab_status=0
if [ "${CGLEAK_LAB:-1}" = 0 ]; then
  echo "!! kernel lab NOT RUN (CGLEAK_LAB=0): the real 5.10 and 6.1 kernels were not tested"
else
  echo "== kernel lab (scripts/vm-test.sh: Debian 5.10 and 6.1 under QEMU; CGLEAK_LAB=0 skips it)"
  scripts/vm-test.sh || lab_status=$?
  case "$lab_status" in
    0) ;;
    3) echo "!! kernel lab COULD NOT RUN (QEMU, busybox or a kernel missing, see above): counted as a failure" ;;
    *) echo "!! kernel lab FAILED (exit $lab_status)" ;;
  esac
  if [ "$lab_status" -ne 0 ]; then
    failed=$((failed + 1))
  fi
fi

echo "tests: $passed passed, $failed failed"
exit "$lab_status"
