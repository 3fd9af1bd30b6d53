# Guest side of the runtime lab (busybox sh, sourced by scenarios/runtime.sh at the end of boot
# C): issue 11's claims from source reading, each given a verdict computed from this run's own
# lines (/tmp/runtime.obs holds every OBS and SCENARIO line of the scenario). One line per claim,
# "OBS claim.<name> CONFIRMED|REFUTED|UNDECIDED|NOT-TESTED <evidence>"; vm-test.sh prints them in
# its summary. runtime.claims passes when every testable claim got CONFIRMED or REFUTED: a
# refuted claim is a finding, not a lab failure; UNDECIDED means the lines it needs are missing.
ROUNDS="migrate-back rename kill-resume"

# o PATTERN: the scenario's lines matching the extended regex PATTERN
o() { grep -E "$1" /tmp/runtime.obs; }
# c PATTERN: how many
c() { grep -cE "$1" /tmp/runtime.obs; }

CLAIMS_UNDECIDED=0
# claim NAME VERDICT EVIDENCE...
claim() {
    n=$1 v=$2
    shift 2
    [ "$v" = UNDECIDED ] && CLAIMS_UNDECIDED=$((CLAIMS_UNDECIDED + 1))
    obs "claim.$n" "$v $*"
}

# the kernel signals an eventfd once when its memcg goes offline, then drops it
claim_eventfd() {
    all=$(c "^OBS runtime\.[a-z-]+\.eventfd\.52428800 ")
    once=$(c "^OBS runtime\.[a-z-]+\.eventfd\.52428800 registered=1 before=0 repair=1 between=0 oom=0")
    none=$(c "^OBS runtime\.[a-z-]+\.eventfd\.52428800 registered=1 before=0 repair=0 between=0 oom=0")
    if [ "$all" = 0 ]; then v=UNDECIDED
    elif [ "$once" = "$all" ]; then v=CONFIRMED
    elif [ "$none" -gt 0 ]; then v=REFUTED
    else v=UNDECIDED; fi
    claim eventfd-offline "$v" "another agent's usage-threshold eventfd: signalled exactly once at the repair and never at the later OOM in $once of $all rounds"
}

# a shim v2 holds one eventfd per container it serves; none once its memcg was removed
claim_shim_watcher() {
    v2=0 held=0 after=0
    for r in $ROUNDS; do
        v2=$((v2 + $(c "^OBS runtime\.$r\.before\.(ctr|docker)\.")))
        held=$((held + $(c "^OBS runtime\.shim\.$r\.before .* eventfd=1 ")))
        after=$((after + $(c "^OBS runtime\.shim\.$r\.after .* eventfd=[1-9]")))
    done
    if [ "$v2" = 0 ]; then v=UNDECIDED
    elif [ "$held" = "$v2" ] && [ "$after" = 0 ]; then v=CONFIRMED
    else v=REFUTED; fi
    claim shim-v2-watcher "$v" "$held eventfds in the shims of $v2 shim v2 containers before the repairs, $after after"
}

# a shim that finds the path missing marks the cgroup deleted: no stats, a later OOM unreported
claim_deleted() {
    pre=$(c "^OBS runtime\.[a-z-]+\.oom\.(ctr|docker)\.app ")
    pre_lost=$(c "^OBS runtime\.[a-z-]+\.oom\.(ctr|docker)\.app [0-9a-f]+ TaskOOM=0 ")
    post=$(c "^OBS runtime\.[a-z-]+\.oom\.(ctr|docker)\.after ")
    post_ok=$(c "^OBS runtime\.[a-z-]+\.oom\.(ctr|docker)\.after [0-9a-f]+ TaskOOM=[1-9]")
    stats=$(c "^OBS runtime\.[a-z-]+\.after\.(ctr|docker)\.")
    stats_lost=$(c "^OBS runtime\.[a-z-]+\.after\.(ctr|docker)\..*stats=\[(FAILS|0B/0B)")
    if [ "$pre" = 0 ] || [ "$post" = 0 ]; then v=UNDECIDED
    elif [ "$pre_lost" = "$pre" ] && [ "$stats_lost" = "$stats" ] && [ "$post_ok" = "$post" ]; then v=CONFIRMED
    else v=REFUTED; fi
    claim deleted-after-missing "$v" "after the repairs: runtime stats gone for $stats_lost of $stats containers; no TaskOOM for $pre_lost of $pre OOM kills of containers started before; TaskOOM for $post_ok of $post started after"
}

# the exit reason is then Error (137), not OOMKilled: docker's State.OOMKilled observed; the
# CRI plugin's reason follows the same TaskOOM (no crictl in Debian: inferred from ctr's events)
claim_exit_reason() {
    dpre=$(c "^OBS runtime\.[a-z-]+\.oom\.docker\.app ")
    dpre_err=$(c "^OBS runtime\.[a-z-]+\.oom\.docker\.app .*TaskOOM=0 .*OOMKilled=false ExitCode=137")
    dpost=$(c "^OBS runtime\.[a-z-]+\.oom\.docker\.after ")
    dpost_oom=$(c "^OBS runtime\.[a-z-]+\.oom\.docker\.after .*OOMKilled=true ExitCode=137")
    cpre=$(c "^OBS runtime\.[a-z-]+\.oom\.ctr\.app .*TaskOOM=0 .*exit_status\":137.*status=STOPPED")
    if [ "$dpre" = 0 ] || [ "$dpost" = 0 ]; then v=UNDECIDED
    elif [ "$dpre_err" = "$dpre" ] && [ "$dpost_oom" = "$dpost" ]; then v=CONFIRMED
    else v=REFUTED; fi
    claim exit-reason "$v" "docker, OOM kill of the init: started before the repair OOMKilled=false ExitCode=137 in $dpre_err of $dpre, started after OOMKilled=true in $dpost_oom of $dpost; shim v2 (ctr) containers from before exited 137 without a TaskOOM in $cpre cases, which the CRI plugin records as Error (Debian has no cri-tools: the reason itself not read)"
}

# a shim that finds the path back publishes a spurious TaskOOM (the race, without cgleak)
claim_spurious() {
    l=$(o "^OBS runtime\.race ")
    fast=$(echo "$l" | sed -n 's/.*at once: TaskOOM=\([0-9]*\).*/\1/p')
    slow=$(echo "$l" | sed -n 's/.*after the rmdir: TaskOOM=\([0-9]*\).*/\1/p')
    if [ -z "$fast" ]; then v=UNDECIDED
    elif [ "$fast" -gt 0 ]; then v=CONFIRMED
    else v=REFUTED; fi
    sp=$(c "^SCENARIO runtime\.[a-z-]+\.spurious PASS")
    claim spurious-when-back "$v" "memcg replaced by hand: path back at once TaskOOM=$fast, 2 s later TaskOOM=$slow; cgleak's repairs: no spurious TaskOOM in $sp of 3 strategies"
}

# runtime v1: the watchers live in containerd; restarting containerd registers them again
claim_v1() {
    l=$(o "^SCENARIO runtime\.v1-restart ")
    if [ -z "$l" ]; then v=UNDECIDED
    else case "$l" in *"ended=yes TaskOOM=1"*) v=CONFIRMED ;; *"ended=yes TaskOOM=0"*) v=REFUTED ;; *) v=UNDECIDED ;; esac; fi
    claim v1-restart "$v" "$(echo "$l" | cut -d' ' -f4-)"
}

# dockerd's OOMKilled follows containerd's TaskOOM
claim_dockerd() {
    both=$(c "^OBS runtime\.[a-z-]+\.oom\.docker\.[a-z]+ [0-9a-f]+ TaskOOM=1 .*OOMKilled=true")
    neither=$(c "^OBS runtime\.[a-z-]+\.oom\.docker\.[a-z]+ [0-9a-f]+ TaskOOM=0 .*OOMKilled=false")
    all=$(c "^OBS runtime\.[a-z-]+\.oom\.docker\.")
    if [ "$all" = 0 ]; then v=UNDECIDED
    elif [ $((both + neither)) = "$all" ] && [ "$both" -gt 0 ] && [ "$neither" -gt 0 ]; then v=CONFIRMED
    elif [ $((both + neither)) = "$all" ]; then v=UNDECIDED
    else v=REFUTED; fi
    claim dockerd-oomkilled "$v" "docker OOM kills: TaskOOM and OOMKilled together in $both, neither in $neither, of $all"
}

# runc keeps only paths: exec and updates work once the paths exist again
claim_runc() {
    ok=$(c "^SCENARIO runtime\.(migrate-back|rename|kill-resume) PASS .*exec elsewhere: none")
    upd=$(c "^OBS runtime\.[a-z-]+\.update\.")
    upd_ok=$(c "^OBS runtime\.[a-z-]+\.update\.[a-z0-9]+ [0-9a-f]+ rc=0 limit=67108864")
    if [ "$upd" = 0 ]; then v=UNDECIDED
    elif [ "$ok" = 3 ] && [ "$upd_ok" = "$upd" ]; then v=CONFIRMED
    else v=REFUTED; fi
    claim runc-paths "$v" "exec into every container landed in its memcg after $ok of 3 repairs; $upd_ok of $upd limit updates through the runtime reached the memcg"
}

claims() {
    claim_eventfd
    claim_shim_watcher
    claim_deleted
    claim_exit_reason
    claim_spurious
    claim_v1
    claim_dockerd
    claim_runc
    claim kubelet-missing-paths NOT-TESTED "no kubelet binary is packaged in Debian, PyPI or npm, the only registries the lab reaches"
    if [ "$CLAIMS_UNDECIDED" = 0 ]; then
        result runtime.claims PASS "every testable claim has a verdict from this run (claim.* lines)"
    else
        result runtime.claims FAIL "$CLAIMS_UNDECIDED claims without the lines their verdict needs"
    fi
}
