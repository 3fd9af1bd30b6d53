#!/usr/bin/env bash
# Tests deploy/ansible (the role and playbook of issue 15) for real: ansible-core and
# ansible-lint from PyPI, pinned in deploy/ansible/requirements.txt, in a project-local virtual
# environment (target/ansible-venv, reused when present); `ansible-lint` (production profile);
# then deploy/ansible/repair.yml run with connection local against emulated nodes
# (`cgleak emulate`, each host a localhost alias with its own --root, --state-dir, install path
# and stand-in kubelet commands that record they ran). The binary is the debug build
# (`cargo build --bin cgleak`, the one `cargo test` builds too), listed in a SHA256SUMS made here
# the way scripts/release.sh makes dist/'s.
#
# Cases, each asserted: the install (from a path and from a file:// URL, both checked against
# SHA256SUMS); check mode changes nothing and runs only diagnose and plan; a healthy node skipped
# with its reason; leaking 3.10 nodes repaired and verified (one with --ids-used from a variable,
# one with probe-headroom), kubelet stopped and started, the Ready wait run; a node whose repair
# fails (fault injection) stops the run: kubelet left stopped, its journal kept, the way on
# printed, the next batch untouched; a second run changes nothing; the runtime remedy step on
# the report's three remedies and on a report without the field.
#
# Exit 0 all passed; 1 a case failed (the lines above say which); 2 the setup failed.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
ansible_dir=$repo/deploy/ansible
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir="$repo/$target_dir" ;; esac
venv=$target_dir/ansible-venv
start=$(date +%s)

die() { echo "ansible-test: $*" >&2; exit 2; }
failures=0
check() { # check DESCRIPTION COMMAND...: one assertion, printed either way
    local what=$1
    shift
    if "$@"; then
        echo "  ok: $what"
    else
        echo "  FAILED: $what"
        failures=$((failures + 1))
    fi
}

echo "== ansible: virtual environment $venv (deploy/ansible/requirements.txt)"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || die "python3 -m venv $venv failed: install python3-venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$ansible_dir/requirements.txt" ||
    die "pip install -r deploy/ansible/requirements.txt failed (PyPI reachable?)"
version=$("$venv/bin/ansible-playbook" --version)
echo "${version%%$'\n'*}"

work=$(mktemp -d /tmp/cgleak-ansible-XXXXXX)
# CGLEAK_ANSIBLE_KEEP=1 keeps the directory (the nodes, inventory, each run's output) to look at.
if [ "${CGLEAK_ANSIBLE_KEEP:-0}" = 1 ]; then
    echo "ansible-test: keeping $work"
else
    trap 'rm -rf "$work"' EXIT
fi
# Ansible and ansible-lint keep their state here, not in the user's home.
export ANSIBLE_HOME="$work/ansible-home" ANSIBLE_LOCAL_TEMP="$work/ansible-tmp"
export ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_FORCE_COLOR=0
export XDG_CACHE_HOME="$work/cache"
export PATH="$venv/bin:$PATH"

echo "== ansible-lint --profile production deploy/ansible"
lint_start=$(date +%s)
(cd "$ansible_dir" && ansible-lint --offline --profile production --nocolor repair.yml roles/cgleak tests) ||
    { echo "  FAILED: ansible-lint"; failures=$((failures + 1)); }
echo "   (ansible-lint: $(($(date +%s) - lint_start)) s)"

echo "== cargo build --bin cgleak (the debug binary the role installs)"
cargo build --quiet --bin cgleak || die "cargo build failed"
mkdir -p "$work/dist"
cp "$target_dir/debug/cgleak" "$work/dist/cgleak"
(cd "$work/dist" && sha256sum cgleak >SHA256SUMS)
cgleak=$work/dist/cgleak

# emulate HOST PROFILE ARGS...: an emulated node in $work/HOST with its bin/ and state/.
emulate() {
    local host=$1 profile=$2
    shift 2
    mkdir -p "$work/$host/bin"
    "$cgleak" emulate "$work/$host/node" --profile "$profile" "$@" >/dev/null
}
emulate healthy 6.1 --pods 3
emulate leaking 3.10 --kmem --pods 4
emulate probed 3.10 --kmem --pods 2
emulate failing 3.10 --kmem --pods 3
emulate untouched 3.10 --kmem --pods 2
# The failing node's staging tree runs out of ids (README.md, "Fault injection").
jq '.faults = [{"when": {"Match": {"op": "mkdir", "path_contains": "/kubepods2/", "times": 1}}, "errno": "ENOSPC"}]' \
    "$work/failing/node/cgleak-emulated.json" >"$work/faults.json"
mv "$work/faults.json" "$work/failing/node/cgleak-emulated.json"
: >"$work/kubeconfig"

# The ids in use, as scripts/memcg-ids.stp would count them on a real 3.10 node: the emulated
# nodes have no dying memcgs, so /proc/cgroups' count is all of them.
ids_used() { "$cgleak" --root "$work/$1/node/memory" diagnose --format json | jq -r '.hierarchy.counted' || true; }

host_line() { # host_line HOST EXTRA: one inventory line
    local h=$1
    printf '%s ansible_connection=local ansible_python_interpreter=%s cgleak_root=%s cgleak_state_dir=%s cgleak_install_path=%s cgleak_kubelet_stop_command="%s %s stop" cgleak_kubelet_start_command="%s %s start" %s\n' \
        "$h" "$venv/bin/python" "$work/$h/node/memory" "$work/$h/state" "$work/$h/bin/cgleak" \
        "$ansible_dir/tests/record.sh" "$work/$h/kubelet.log" "$ansible_dir/tests/record.sh" "$work/$h/kubelet.log" "$2"
}
src_vars="cgleak_binary_src=$work/dist/cgleak cgleak_sha256sums_src=$work/dist/SHA256SUMS"
url_vars="cgleak_binary_url=file://$work/dist/cgleak cgleak_sha256sums_url=file://$work/dist/SHA256SUMS"
{
    echo "[cgleak_nodes]"
    host_line healthy "$src_vars"
    host_line leaking "$src_vars cgleak_ids_used=$(ids_used leaking) cgleak_kubeconfig=$work/kubeconfig cgleak_kubectl=$ansible_dir/tests/kubectl"
    host_line probed "$url_vars cgleak_ids_probe=true"
    host_line failing "$src_vars cgleak_ids_used=$(ids_used failing)"
    host_line untouched "$src_vars cgleak_ids_used=$(ids_used untouched)"
} >"$work/inventory"

# play NAME ARGS...: ansible-playbook repair.yml, two nodes a batch; output in $work/NAME.out,
# exit status in $work/NAME.rc.
play() {
    local name=$1
    shift
    echo "-- ansible-playbook repair.yml $* ($name)"
    local t0
    t0=$(date +%s)
    set +e
    ansible-playbook -i "$work/inventory" "$ansible_dir/repair.yml" \
        -e '{"cgleak_become": false, "cgleak_serial": 2}' -e "cgleak_report_dir=$work/reports/$name" \
        "$@" >"$work/$name.out" 2>&1
    echo $? >"$work/$name.rc"
    set -e
    sed -n '/^PLAY RECAP/,$p' "$work/$name.out" | sed '/^$/d'
    echo "   ($name: exit $(cat "$work/$name.rc"), $(($(date +%s) - t0)) s)"
}
rc_of() { cat "$work/$1.rc"; }
recap() { # recap RUN HOST FIELD: a number of the PLAY RECAP line
    sed -n "/^PLAY RECAP/,\$s/^$2 *:.* $3=\([0-9]*\).*/\1/p" "$work/$1.out"
}
hosts="healthy leaking probed failing untouched"
digest() { # every file of every node, state and bin directory: names and contents
    local dirs=() h s
    for h in $hosts; do
        for s in node state bin; do
            if [ -d "$work/$h/$s" ]; then dirs+=("$work/$h/$s"); fi
        done
    done
    find "${dirs[@]}" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum
}
node_json() { "$cgleak" --root "$work/$1/node/memory" diagnose --format json "${@:2}" || true; }
verified() { "$cgleak" --root "$work/$1/node/memory" verify --state-dir "$work/$1/state" >/dev/null; }
resumed() { "$cgleak" resume --yes --root "$work/$1/node/memory" --state-dir "$work/$1/state" >/dev/null; }
no_probe_left() { ! compgen -G "$work/$1/node/memory/cgleak-probe-*" >/dev/null; }
jqe() { jq -e "$@" >/dev/null; }
lines() { [ -f "$1" ] && tr '\n' ' ' <"$1" | sed 's/ $//'; }

echo "== check mode before the install"
play preinstall --check --limit healthy
check "preinstall: ansible-playbook exits 2" [ "$(rc_of preinstall)" = 2 ]
check "preinstall: it says to install first" grep -q "$work/healthy/bin/cgleak is missing or not the release given.*--tags cgleak_install" "$work/preinstall.out"
check "preinstall: nothing installed" [ ! -e "$work/healthy/bin/cgleak" ]

echo "== install only (--tags cgleak_install)"
play install --tags cgleak_install
check "install: exit 0" [ "$(rc_of install)" = 0 ]
for h in $hosts; do
    check "install: $h's binary matches SHA256SUMS" cmp -s "$work/$h/bin/cgleak" "$work/dist/cgleak"
done
check "install: the URL host (get_url + checksum) installed" grep -q '^probed .*changed=1' <(sed -n '/^PLAY RECAP/,$p' "$work/install.out")

echo "== check mode"
before=$(digest)
play check --check
check "check: exit 0" [ "$(rc_of check)" = 0 ]
check "check: no node, state directory or binary changed" [ "$(digest)" = "$before" ]
for h in $hosts; do
    check "check: $h reports changed=0" [ "$(recap check $h changed)" = 0 ]
    check "check: $h's kubelet commands did not run" [ ! -e "$work/$h/kubelet.log" ]
done
check "check: leaking would be repaired" grep -q '"would-repair"' "$work/reports/check/leaking/outcome.json"
check "check: the plan was collected" jqe '.blockers == []' "$work/reports/check/leaking/plan.json"
check "check: no repair ran" [ ! -e "$work/reports/check/leaking/repair.json" ]

echo "== a binary that SHA256SUMS does not name"
printf '%064d  cgleak\n' 0 >"$work/bad-SHA256SUMS"
before=$(digest)
play badsum --limit healthy -e "cgleak_sha256sums_src=$work/bad-SHA256SUMS"
check "badsum: ansible-playbook exits 2" [ "$(rc_of badsum)" = 2 ]
check "badsum: the refusal names both files and what to do" \
    grep -q "$work/dist/cgleak does not match the line .\{1,2\}cgleak.\{1,2\} of $work/bad-SHA256SUMS.*same scripts/release.sh run" "$work/badsum.out"
check "badsum: nothing changed" [ "$(digest)" = "$before" ]
check "badsum: no cgleak command ran" [ ! -e "$work/reports/badsum" ]

echo "== the rolling repair"
play run
check "run: ansible-playbook exits 2 (a node failed)" [ "$(rc_of run)" = 2 ]
check "run: the healthy node is skipped and says why" grep -q 'healthy: skipped, healthy' "$work/run.out"
check "run: healthy's outcome is skipped" jqe '.outcome == "skipped" and (.reason | test("nothing to repair"))' "$work/reports/run/healthy/outcome.json"
for h in leaking probed; do
    check "run: $h repaired" jqe '.outcome == "repaired"' "$work/reports/run/$h/outcome.json"
    check "run: $h's report says verified" jqe '.exit == 0 and .report.verify.ok == true' "$work/reports/run/$h/repair.json"
    check "run: $h's kubelet stopped then started" [ "$(lines "$work/$h/kubelet.log")" = "stop start" ]
    check "run: $h verifies" verified "$h"
done
check "run: leaking is healthy now" jqe '.verdict.status == "healthy" and .kubepods.kmem_active == false' <(node_json leaking --ids-used "$(ids_used leaking)")
check "run: the Ready wait ran for leaking" grep -q 'wait --for=condition=Ready node/leaking' "$work/kubeconfig.calls"
# probe-headroom proved needed + margin ids free, so the plan saw exactly that many.
check "run: the probe's bound reached probed's plan" jqe '.ids.free == .ids.needed + .ids.margin' "$work/reports/run/probed/plan.json"
check "run: the probe left no probe cgroup" no_probe_left probed
check "run: failing's outcome is failed" jqe '.outcome == "failed"' "$work/reports/run/failing/outcome.json"
check "run: failing's kubelet is left stopped" [ "$(lines "$work/failing/kubelet.log")" = "stop" ]
check "run: failing's journal is kept" [ -s "$work/failing/state/journal.json" ]
check "run: the way on is printed" grep -q "cgleak resume --root $work/failing/node/memory --state-dir $work/failing/state" "$work/run.out"
check "run: the printed way on finishes failing's repair" resumed failing
check "run: failing verifies after the resume" verified failing
check "run: the next batch is untouched" [ ! -e "$work/untouched/kubelet.log" ] && [ ! -e "$work/reports/run/untouched" ]
check "run: untouched still has kmem active" jqe '.kubepods.kmem_active == true' <(node_json untouched)
check "run: serial 2: two batches ran, the third (untouched) never began" [ "$(grep -c '^PLAY \[' "$work/run.out")" = 2 ]

echo "== a second run of the repaired nodes"
before=$(digest)
play again --limit healthy,leaking,probed
check "again: exit 0" [ "$(rc_of again)" = 0 ]
for h in healthy leaking probed; do
    check "again: $h reports changed=0" [ "$(recap again $h changed)" = 0 ]
    check "again: $h skipped" jqe '.outcome == "skipped"' "$work/reports/again/$h/outcome.json"
done
check "again: nothing on the nodes changed" [ "$(digest)" = "$before" ]
check "again: no kubelet command ran" [ "$(lines "$work/leaking/kubelet.log")" = "stop start" ]

echo "== the runtime remedy step (the repair report's runtime object)"
echo "affected containers" >"$work/affected.txt"
remedy() { # remedy NAME MODE RUNTIME_JSON
    set +e
    ANSIBLE_ROLES_PATH="$ansible_dir/roles" ansible-playbook -i localhost, -c local -e "ansible_python_interpreter=$venv/bin/python" \
        "$ansible_dir/tests/runtime-remedy.yml" -e "cgleak_runtime_remedy=$2" \
        -e "{\"cgleak_repair_report\": $3}" -e "cgleak_node_reports=$work/remedy-$1" \
        -e "cgleak_runtime_restart_command='$ansible_dir/tests/record.sh $work/remedy-$1.log restart-containerd'" \
        >"$work/remedy-$1.out" 2>&1
    echo $? >"$work/remedy-$1.rc"
    set -e
    mkdir -p "$work/remedy-$1"
}
remedy none report '{"command": "repair"}'
check "remedy: a report without runtime is remedy none" grep -q 'runtime remedy none (0 containers affected), the report has no runtime field' "$work/remedy-none.out"
remedy restart restart '{"runtime": {"affected": 3, "remedy": "restart-containerd", "affected_file": null, "check_command": null}}'
check "remedy: restart-containerd with restart runs the command" [ "$(lines "$work/remedy-restart.log")" = "restart-containerd" ]
remedy report report '{"runtime": {"affected": 3, "remedy": "restart-containerd", "affected_file": null, "check_command": null}}'
check "remedy: restart-containerd with report only says it" [ ! -e "$work/remedy-report.log" ] && grep -q 'containerd needs a restart' "$work/remedy-report.out"
remedy rolling report "{\"runtime\": {\"affected\": 1, \"remedy\": \"rolling-restart\", \"affected_file\": \"$work/affected.txt\", \"check_command\": \"crictl ps\"}}"
check "remedy: rolling-restart fetches the affected file" cmp -s "$work/affected.txt" "$work/remedy-rolling/runtime-affected"
check "remedy: rolling-restart prints the check command" grep -q 'check them with: crictl ps' "$work/remedy-rolling.out"
remedy skip skip "{\"runtime\": {\"affected\": 1, \"remedy\": \"restart-containerd\", \"affected_file\": null, \"check_command\": null}}"
check "remedy: skip runs nothing" [ ! -e "$work/remedy-skip.log" ]
for r in none restart report rolling skip; do
    check "remedy: $r exits 0" [ "$(rc_of "remedy-$r")" = 0 ]
done

echo "== ansible tests: $failures failed, $(($(date +%s) - start)) s"
if [ "$failures" -ne 0 ]; then
    for f in run check again install; do
        echo "---- $f.out (last 60 lines)"
        tail -60 "$work/$f.out"
    done
    exit 1
fi
