# Host side of the runtime lab (sourced by scripts/vm-test.sh, bash): the container runtimes'
# disk image. Debian bookworm's containerd, runc and docker.io, the shared libraries their
# binaries need and busybox-static (the containers' root filesystem), taken from the packages
# with `apt-get download` + `dpkg-deb -x` through the lab's private apt state (nothing is
# installed on the host, no runtime is ever run here), checked by the ELF NEEDED entries
# (readelf -d) against what was unpacked, and written as an ext4 image with `mkfs.ext4 -d`.
# The image is cached under $cache/runtimes/<key>.img, the key made of the three package
# versions; the guest gets it read-only as one more virtio disk (boot C, scenarios/runtime.sh).

rt_suite=bookworm
# what the scenarios run; docker.io's other Depends (iptables, tini, adduser) are left out on
# purpose: dockerd runs with --iptables=false --bridge=none and containers without --init
rt_pkgs="containerd runc docker.io busybox-static"

# rt_candidate PKG OPTS...: the candidate version of PKG in the private apt state
rt_candidate() {
    local p=$1
    shift
    apt-cache "$@" policy "$p" | awk '/Candidate:/ { print $2; exit }'
}

# rt_closure OPTS...: rt_pkgs plus every library package (lib*) they depend on, recursively
# (Depends and Pre-Depends; a virtual <name> is skipped: its real provider is listed too)
rt_closure() {
    local -A seen=()
    local queue=($rt_pkgs) p d
    while [ ${#queue[@]} -gt 0 ]; do
        p=${queue[0]}
        queue=("${queue[@]:1}")
        [ -n "${seen[$p]:-}" ] && continue
        seen[$p]=1
        echo "$p"
        for d in $(apt-cache "$@" depends --no-recommends --no-suggests --no-conflicts \
            --no-breaks --no-replaces --no-enhances "$p" |
            awk '$1 ~ /^\|?(Pre)?Depends:$/ && $2 !~ /^</ { print $2 }'); do
            case "$d" in lib*) queue+=("$d") ;; esac
        done
    done
}

# rt_check_needed TREE: every NEEDED soname of every ELF file under TREE is present in TREE's
# library directories (or, for a RUNPATH of $ORIGIN as glibc's gconv modules have, in its own
# directory); prints the missing "file: soname" pairs and fails if any
rt_check_needed() {
    local tree=$1 f so missing=0
    local dirs=(lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu lib64 lib usr/lib)
    while IFS= read -r f; do
        local dyn own=""
        dyn=$(readelf -d "$f" 2>/dev/null)
        case "$dyn" in *'[$ORIGIN'*) own=$(dirname "${f#"$tree"/}") ;; esac
        for so in $(echo "$dyn" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            local found=0 d
            for d in "${dirs[@]}" $own; do
                if [ -e "$tree/$d/$so" ]; then found=1; break; fi
            done
            if [ $found = 0 ]; then
                echo "missing: ${f#"$tree"/}: $so" >&2
                missing=1
            fi
        done
    done < <(find "$tree" -type f \( -perm -u+x -o -name '*.so*' \) -exec sh -c \
        'head -c 4 "$1" | grep -q "ELF" && echo "$1"' _ {} \;)
    return $missing
}

# fetch_runtimes: prints the path of the runtime disk image (built on first use)
fetch_runtimes() {
    local root="$cache/runtimes"
    mkdir -p "$root"
    if [ "${CGLEAK_LAB_REFRESH:-0}" != 1 ] && [ -f "$root/current" ] &&
        [ -f "$root/$(cat "$root/current").img" ]; then
        log "runtimes: cached image $(cat "$root/current")"
        echo "$root/$(cat "$root/current").img"
        return
    fi
    apt_suite_state "$rt_suite"
    local opts key="" p v
    mapfile -t opts < <(apt_opts "$rt_suite")
    for p in containerd runc docker.io; do
        v=$(rt_candidate "$p" "${opts[@]}")
        [ -n "$v" ] || die 3 "runtimes: $p has no candidate in $rt_suite"
        key="$key${key:+_}$p-$v"
    done
    key=$(echo "$key" | tr ':~+' '...')
    if [ ! -f "$root/$key.img" ]; then
        rt_build "$root" "$key" "${opts[@]}"
    fi
    echo "$key" > "$root/current"
    echo "$root/$key.img"
}

# rt_build ROOT KEY OPTS...: download, unpack, check, add the lab's files, make the image
rt_build() {
    local root=$1 key=$2
    shift 2
    local dl="$root/dl" tree="$root/$key.tree" pkgs deb
    rm -rf "$dl" "$tree"
    mkdir -p "$dl" "$tree"
    pkgs=$(rt_closure "$@" | tr '\n' ' ')
    log "runtimes: apt-get download $pkgs"
    (cd "$dl" && apt-get "$@" download $pkgs >&2) || die 3 "runtimes: apt-get download failed"
    for deb in "$dl"/*.deb; do dpkg-deb -x "$deb" "$tree"; done
    (cd "$dl" && ls *.deb) > "$tree/lab-packages"
    rt_check_needed "$tree" || die 3 "runtimes: shared libraries missing from the image (above)"
    # the loader's search path without the host's ld.so.cache
    mkdir -p "$tree/etc/ld.so.conf.d"
    printf '/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n' > "$tree/etc/ld.so.conf"
    ldconfig -r "$tree" 2>/dev/null || true
    mkdir -p "$tree/lab"
    oci_busybox_archive "$tree/bin/busybox" "$root/oci.tmp" "$tree/lab/busybox-oci.tar"
    rm -rf "$root/oci.tmp"
    local mb
    mb=$(( $(du -sm "$tree" | cut -f1) * 13 / 10 + 32 ))
    log "runtimes: mkfs.ext4 -d ($mb MiB) $key"
    rm -f "$root/$key.img.tmp"
    truncate -s "${mb}M" "$root/$key.img.tmp"
    mkfs.ext4 -q -F -L cgleak-rt -d "$tree" "$root/$key.img.tmp" >&2 ||
        die 3 "runtimes: mkfs.ext4 -d failed"
    mv "$root/$key.img.tmp" "$root/$key.img"
    rm -rf "$dl" "$tree"
}
