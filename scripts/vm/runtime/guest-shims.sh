# Guest side of the runtime lab (busybox sh, sourced after runtime/guest.sh): what a read-only
# tool can learn about the runtimes from /proc and the binaries alone, for cgleak's runtime
# detection (issue 11 part 2): each shim's comm, cmdline and exe, the parent chain from a
# container's init to its shim and daemon, the shim's open fds by kind (eventfds are the
# cgroup.event_control watchers), and the version strings inside the binaries.

# shim_pids: every containerd shim (v1 containerd-shim, v2 containerd-shim-runc-v2), by comm
# (comm is truncated to 15 characters: "containerd-shim" for all of them)
shim_pids() {
    for d in /proc/[0-9]*; do
        case "$(cat "$d/comm" 2>/dev/null)" in containerd-shim*) echo "${d#/proc/}" ;; esac
    done
}

# proc_id PID: "comm|exe|cmdline" of PID
proc_id() {
    echo "$(cat /proc/$1/comm 2>/dev/null)|$(readlink /proc/$1/exe 2>/dev/null)|$(tr '\0' ' ' < /proc/$1/cmdline 2>/dev/null)"
}

ppid_of() { awk '/^PPid:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# chain PID: PID and its ancestors up to pid 1, each as pid:comm
chain() {
    p=$1 out=""
    while [ -n "$p" ] && [ "$p" != 0 ]; do
        out="$out${out:+ <- }$p:$(cat /proc/$p/comm 2>/dev/null)"
        [ "$p" = 1 ] && break
        p=$(ppid_of "$p")
    done
    echo "$out"
}

# fd_kinds PID: PID's open fds counted by kind (eventfd, eventpoll, pipe, socket, memcg files,
# other), from the link targets of /proc/PID/fd
fd_kinds() {
    for f in /proc/$1/fd/*; do readlink "$f" 2>/dev/null; done | awk '
        /eventfd/ { e++; next } /eventpoll/ { p++; next } /^pipe:/ { pi++; next }
        /^socket:/ { s++; next } /cgroup\/memory/ { m++; next } { o++ }
        END { printf "eventfd=%d eventpoll=%d pipe=%d socket=%d memcg-files=%d other=%d", e, p, pi, s, m, o }'
}

# shim_census WHEN: one OBS line per shim: the container ids it serves (-id of its cmdline;
# a v1 shim has no -id: its workdir names the container) and its fd kinds
shim_census() {
    for s in $(shim_pids); do
        c=$(tr '\0' ' ' < /proc/$s/cmdline | sed -n 's/.*-id \([^ ]*\).*/\1/p; s/.*-workdir [^ ]*\/\([^ /]*\) .*/\1/p' | head -n1)
        obs "runtime.shim.$1" "pid=$s id=$(echo "$c" | cut -c1-12) $(fd_kinds "$s")"
    done
}

# shim_identity: each shim's comm/exe/cmdline once, and the chain of one container per kind
shim_identity() {
    for s in $(shim_pids); do obs runtime.shim.identity "$s $(proc_id "$s")"; done
    for k in ctr ctr1 docker; do
        id=$(awk -v k=$k '$1 == k { print $2; exit }' $CTRS)
        [ -n "$id" ] && obs "runtime.chain.$k" "$(chain "$(c_pid $k "$id")")"
    done
    obs runtime.daemon.containerd "$(proc_id "$CTRD_PID")"
    obs runtime.daemon.dockerd "$(proc_id "$DOCKERD_PID")"
}

# binary_versions: what the binaries say without being run: the version string of the package
# (grep -a), the Go buildinfo magic and its module lines (mod/dep), and whether the image has a
# dpkg status file
binary_versions() {
    cv=$(containerd --version | awk '{ print $3 }')
    for b in /usr/bin/containerd /usr/bin/containerd-shim /usr/bin/containerd-shim-runc-v2 \
        /usr/sbin/runc /usr/sbin/dockerd /usr/bin/dockerd; do
        [ -f "$b" ] || continue
        has_cv=$(grep -c -a -F "$cv" "$b")
        bi=$(grep -c -a -F "$(printf '\377 Go buildinf:')" "$b")
        mods=$(strings -n 6 "$b" | grep -E "^(path|mod)	" | head -n 2 | tr '\t\n' ' ')
        obs runtime.binary "$b size=$(stat -c %s "$b") lines-with-'$cv'=$has_cv buildinfo-magic=$bi [$mods]"
    done
    obs runtime.dpkg_status "$([ -f /rt/var/lib/dpkg/status ] && echo present || echo 'absent (image made by dpkg-deb -x)')"
}
