#!/usr/bin/env bash
# cgleak kernel lab: boots real Debian cloud kernels (6.1 bookworm, 5.10 bullseye) under QEMU
# (plain TCG emulation, no KVM) with a busybox initramfs holding a static cgleak and the guest
# scenarios of scripts/vm/, and judges each scenario from the lines the guest prints
# ("SCENARIO <name> PASS|FAIL|NOT-RUN <detail>"). See scripts/vm/README.md.
#
# Environment:
#   CGLEAK_LAB_CACHE         cache outside git (default /var/cache/cgleak-lab): apt state,
#                            kernels, initramfs, disk images, logs
#   CGLEAK_LAB_ALLOW_NOTRUN  1: NOT-RUN scenarios do not fail the run (default: they do)
#   CGLEAK_LAB_KERNELS       suites to boot (default "bookworm bullseye")
#   CGLEAK_LAB_REFRESH       1: re-resolve the kernel packages even when cached
#   CGLEAK_LAB_NO_BUILD      1: do not build cgleak (cgleak scenarios report NOT-RUN)
#   CGLEAK_LAB_CGLEAK        path of a prebuilt static cgleak to use instead of building
#   CGLEAK_LAB_SERIAL        1: boot the kernels one after the other (default: in parallel)
#   CGLEAK_LAB_MEM           guest memory in MiB (default 3072: the swap cycle needs room)
#   CGLEAK_LAB_RUNTIME_KERNELS suites that get boot C (default "bookworm bullseye")
#   CGLEAK_LAB_GROUP_A/_B/_C (development) scenarios of boot A / B / C instead of the full
#                            lists; =none skips that boot. Scenarios left out are reported as
#                            FAIL. Boot C runs containerd, runc and dockerd (Debian bookworm's,
#                            from the runtime image cached under $CGLEAK_LAB_CACHE/runtimes).
#   CGLEAK_LAB_STALLS        1: also boot D, the stall benchmark (benches/stalls/, scenario
#                            stalls), on each kernel. Not in the default run (it takes ~10 min a
#                            kernel); scripts/bench.sh --lab runs boot D alone
#   CGLEAK_LAB_GROUP_D       scenarios of boot D (default stalls when CGLEAK_LAB_STALLS=1); a
#                            name other than none also turns boot D on
#   CGLEAK_LAB_STALLS_ARGS   options of the stall bench in boot D (default
#                            "--pods 30 --mib 0,16,48 --big-mib 512 --runs 1 --idle-ms 1000")
#   CGLEAK_LAB_STALLS_MEM    guest memory of boot D in MiB (default 10240: the bench skips a size
#                            whose estimate does not fit MemAvailable)
#   CGLEAK_LAB_STALLS_BIN    path of a prebuilt static stall bench (cargo bench --no-run --bench
#                            stalls with crt-static) instead of building it; the build also gives
#                            the static cgleak boot D uses unless CGLEAK_LAB_CGLEAK is set
# Exit: 0 all scenarios passed; 1 a scenario failed or did not run; 3 the lab could not run
# (QEMU or a kernel missing).
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(git -C "$script_dir" rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/.." && pwd))
vm_dir="$repo/scripts/vm"
cache=${CGLEAK_LAB_CACHE:-/var/cache/cgleak-lab}
allow_notrun=${CGLEAK_LAB_ALLOW_NOTRUN:-0}
suites=${CGLEAK_LAB_KERNELS:-bookworm bullseye}
runtime_suites=${CGLEAK_LAB_RUNTIME_KERNELS:-bookworm bullseye}
mem=${CGLEAK_LAB_MEM:-3072}
stalls_mem=${CGLEAK_LAB_STALLS_MEM:-10240}
stalls_args=${CGLEAK_LAB_STALLS_ARGS:---pods 30 --mib 0,16,48 --big-mib 512 --runs 1 --idle-ms 1000}
run_id=$(date +%Y%m%d-%H%M%S)
logs="$cache/logs/$run_id"
t_start=$SECONDS

log() { printf '[vm-test %3ds] %s\n' $((SECONDS - t_start)) "$*" >&2; }
die() {
    local code=$1
    shift
    {
        echo
        echo "############################################################"
        echo "## vm-test: $*"
        echo "## The kernel lab did NOT run: nothing was tested."
        echo "############################################################"
    } >&2
    exit "$code"
}

# ---------------------------------------------------------------- host tools
apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        apt-get update -qq >&2 || true
        apt_updated=1
    fi
    log "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

busybox_static() {
    [ -x /bin/busybox ] || return 1
    # a static binary has no program interpreter
    local out
    out=$(LC_ALL=C ldd /bin/busybox 2>&1 || true)
    case "$out" in *"not a dynamic"*) return 0 ;; *) return 1 ;; esac
}

ensure_tools() {
    local missing=()
    command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
    busybox_static || missing+=(busybox-static)
    command -v cpio >/dev/null || missing+=(cpio)
    command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
    command -v gcc >/dev/null || missing+=(gcc libc6-dev)
    command -v apt-get >/dev/null || die 3 "apt-get not found: this lab needs a Debian host"
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" != 0 ]; then
            die 3 "missing ${missing[*]} and not root, cannot apt-get install them"
        fi
        apt_install "${missing[@]}" || true
    fi
    command -v qemu-system-x86_64 >/dev/null ||
        die 3 "QEMU (qemu-system-x86_64) is not installed and could not be installed"
    busybox_static || die 3 "busybox-static could not be installed (/bin/busybox is not static)"
    command -v cpio >/dev/null || die 3 "cpio could not be installed"
    command -v mkfs.ext4 >/dev/null || die 3 "mkfs.ext4 (e2fsprogs) could not be installed"
    command -v gcc >/dev/null || die 3 "gcc could not be installed (needed for scripts/vm/memcg-churn.c)"
}

# ---------------------------------------------------------------- kernels
# The machine's Debian mirror, read at run time (never written into the repo).
mirror_uri() {
    local f uri=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
        [ -n "$uri" ] && break
    done
    if [ -z "$uri" ]; then
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] || continue
            uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' "$f")
            [ -n "$uri" ] && break
        done
    fi
    [ -n "$uri" ] || die 3 "no Debian mirror URI found in /etc/apt/sources.list.d"
    echo "$uri"
}

# apt options that keep the machine's apt state untouched: everything under $cache/apt/SUITE
apt_opts() {
    local d="$cache/apt/$1"
    printf '%s\n' \
        -o "Dir::State=$d/state" -o "Dir::State::Lists=$d/lists" \
        -o "Dir::State::status=$d/status" -o "Dir::Cache=$d/cache" \
        -o "Dir::Cache::archives=$d/archives" -o "Dir::Etc::SourceList=$d/sources.list" \
        -o "Dir::Etc::SourceParts=$d/sources.list.d" -o "Dir::Etc::Preferences=$d/preferences" \
        -o "Dir::Etc::PreferencesParts=$d/preferences.d" -o "APT::Architecture=amd64" \
        -o "APT::Architectures=amd64" -o "Acquire::Languages=none" \
        -o "Debug::NoLocking=1"
}

# apt_suite_state SUITE: the private apt state of SUITE under $cache/apt/SUITE, updated once
# per run (the kernels and the runtime image share it)
declare -A apt_suite_done=()
apt_suite_state() {
    local suite=$1 d="$cache/apt/$1"
    [ -n "${apt_suite_done[$suite]:-}" ] && return
    local uri
    uri=$(mirror_uri)
    mkdir -p "$d/state" "$d/lists/partial" "$d/cache" "$d/archives/partial" \
        "$d/sources.list.d" "$d/preferences.d"
    touch "$d/status"
    local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    local signed=""
    [ -f "$keyring" ] && signed="[signed-by=$keyring] "
    echo "deb ${signed}$uri $suite main" > "$d/sources.list"
    local opts
    mapfile -t opts < <(apt_opts "$suite")
    log "$suite: apt-get update (private state in $d)"
    apt-get "${opts[@]}" update -qq >&2 || die 3 "apt-get update for $suite failed"
    apt_suite_done[$suite]=1
}

# fetch_kernel SUITE: prints the directory holding boot/vmlinuz-* and lib/modules/*
fetch_kernel() {
    local suite=$1 kroot="$cache/kernels/$1"
    if [ "${CGLEAK_LAB_REFRESH:-0}" != 1 ] && [ -f "$kroot/current" ]; then
        local cur
        cur=$(cat "$kroot/current")
        if compgen -G "$kroot/$cur/boot/vmlinuz-*" >/dev/null; then
            log "$suite: cached kernel $cur"
            echo "$kroot/$cur"
            return
        fi
    fi
    mkdir -p "$kroot"
    apt_suite_state "$suite"
    local opts
    mapfile -t opts < <(apt_opts "$suite")
    local pkg
    pkg=$(apt-cache "${opts[@]}" depends linux-image-cloud-amd64 |
        awk '/Depends: linux-image-[0-9].*-cloud-amd64/ { print $2; exit }')
    [ -n "$pkg" ] || die 3 "$suite: cannot resolve linux-image-cloud-amd64"
    local ver=${pkg#linux-image-}
    if ! compgen -G "$kroot/$ver/boot/vmlinuz-*" >/dev/null; then
        log "$suite: apt-get download $pkg"
        rm -rf "$kroot/dl" "$kroot/$ver.tmp"
        mkdir -p "$kroot/dl"
        (cd "$kroot/dl" && apt-get "${opts[@]}" download "$pkg" >&2) ||
            die 3 "$suite: apt-get download $pkg failed"
        dpkg-deb -x "$kroot"/dl/"$pkg"_*.deb "$kroot/$ver.tmp"
        mv "$kroot/$ver.tmp" "$kroot/$ver"
        rm -rf "$kroot/dl"
    fi
    echo "$ver" > "$kroot/current"
    echo "$kroot/$ver"
}

# mod_deps KO: the modules a .ko depends on (from its .modinfo section)
mod_deps() {
    tr '\0' '\n' < "$1" | sed -n 's/^depends=//p' | head -n1 | tr ',' ' '
}

# add_modules KDIR DEST NAME...: copy modules and their dependencies, write modules.order
add_modules() {
    local kdir=$1 dest=$2
    shift 2
    mkdir -p "$dest/lab/modules"
    : > "$dest/lab/modules.order"
    local -A done_=()
    local m
    _add() {
        local name=$1 ko dep
        [ -n "${done_[$name]:-}" ] && return 0
        done_[$name]=1
        ko=$(find "$kdir/lib/modules" \( -name "$name.ko" -o -name "$name.ko.xz" -o -name "$name.ko.zst" \) | head -n1)
        if [ -z "$ko" ]; then
            # built in (or absent): nothing to load
            return 0
        fi
        case "$ko" in
            *.xz) xz -dc "$ko" > "$dest/lab/modules/$name.ko" ;;
            *.zst) zstd -qdc "$ko" > "$dest/lab/modules/$name.ko" ;;
            *) cp "$ko" "$dest/lab/modules/$name.ko" ;;
        esac
        for dep in $(mod_deps "$dest/lab/modules/$name.ko"); do
            _add "$dep"
        done
        echo "$name" >> "$dest/lab/modules.order"
    }
    for m in "$@"; do
        if grep -q "^CONFIG_$(echo "$m" | tr '[:lower:]' '[:upper:]')=y" "$kdir"/boot/config-* 2>/dev/null; then
            continue
        fi
        _add "$m"
    done
}

# the container runtimes' disk image and the containers' image (boot C)
. "$vm_dir/runtime/oci.sh"
. "$vm_dir/runtime/rootfs.sh"

# ---------------------------------------------------------------- builds
# boot D (the stall benchmark) is on: CGLEAK_LAB_STALLS=1, or a GROUP_D other than none
stalls_on() {
    case "${CGLEAK_LAB_GROUP_D:-}" in
        none) return 1 ;;
        "") [ "${CGLEAK_LAB_STALLS:-0}" = 1 ] ;;
        *) return 0 ;;
    esac
}

# build_stalls: the stall bench as a static binary (stalls_bin), built like release.sh builds
# cgleak (crt-static, --target x86_64-unknown-linux-gnu, bench profile = release); the same
# cargo run builds the static cgleak the bench runs (stalls_cgleak)
build_stalls() {
    stalls_bin="" stalls_cgleak=""
    stalls_on || return 0
    if [ -n "${CGLEAK_LAB_STALLS_BIN:-}" ]; then
        stalls_bin=$CGLEAK_LAB_STALLS_BIN
        return
    fi
    command -v cargo >/dev/null || die 3 "boot D asked for, but cargo is not found to build the stall bench"
    local target=x86_64-unknown-linux-gnu json
    log "building the static stall bench (cargo bench --no-run --bench stalls --target $target, crt-static)"
    json=$(cd "$repo" && env -u CARGO_ENCODED_RUSTFLAGS RUSTFLAGS="-C target-feature=+crt-static" \
        cargo bench --no-run --locked --bench stalls --target "$target" --message-format=json) ||
        die 3 "cannot build the stall bench (see above)"
    stalls_bin=$(printf '%s\n' "$json" | grep -o '"executable":"[^"]*/deps/stalls-[^"]*"' | tail -n1 | cut -d'"' -f4)
    stalls_cgleak=$(printf '%s\n' "$json" | grep -o '"executable":"[^"]*/release/cgleak"' | tail -n1 | cut -d'"' -f4)
    [ -x "$stalls_bin" ] || die 3 "cargo built the stall bench but no executable was reported"
    local b
    for b in "$stalls_bin" $stalls_cgleak; do
        if readelf -lW "$b" | grep -q INTERP; then die 3 "$b is not static"; fi
    done
}

build_cgleak() {
    cgleak_bin=""
    if [ -n "${CGLEAK_LAB_CGLEAK:-}" ]; then
        cgleak_bin=$CGLEAK_LAB_CGLEAK
        return
    fi
    if [ -n "${stalls_cgleak:-}" ]; then
        # the static release-profile cgleak of the stall bench's build (build_stalls)
        cgleak_bin=$stalls_cgleak
        return
    fi
    if [ "${CGLEAK_LAB_NO_BUILD:-0}" = 1 ]; then
        log "CGLEAK_LAB_NO_BUILD=1: no cgleak in the guest; its scenarios will be NOT-RUN"
        return
    fi
    if ! command -v cargo >/dev/null; then
        log "WARNING: cargo not found: no cgleak in the guest; its scenarios will be NOT-RUN"
        return
    fi
    # The release build: the same static binary as dist/, checked static by release.sh.
    log "building static cgleak (scripts/release.sh)"
    if "$repo/scripts/release.sh" >&2; then
        cgleak_bin="$repo/dist/cgleak"
    else
        log "WARNING: scripts/release.sh failed: no cgleak in the guest; its scenarios will be NOT-RUN"
    fi
}

# build_helpers: every C helper of scripts/vm/ (memcg-churn.c, memcg-event.c), static, into
# $cache/work/bin (rebuilt when the source is newer)
build_helpers() {
    helper_dir="$cache/work/bin"
    mkdir -p "$helper_dir"
    local c b
    for c in "$vm_dir"/*.c; do
        b="$helper_dir/$(basename "$c" .c)"
        if [ ! -x "$b" ] || [ "$c" -nt "$b" ]; then
            log "gcc -static scripts/vm/$(basename "$c")"
            gcc -static -O2 -Wall -o "$b.tmp" "$c" ||
                die 3 "cannot build scripts/vm/$(basename "$c") (static glibc: apt-get install libc6-dev)"
            mv "$b.tmp" "$b"
        fi
    done
}

# pack_initramfs KDIR OUT
pack_initramfs() {
    local kdir=$1 out=$2 root
    root=$(mktemp -d "$cache/work/initramfs.XXXXXX")
    mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,mnt,lab/bin,lab/scenarios,lab/runtime}
    cp /bin/busybox "$root/bin/busybox"
    cp "$vm_dir/init" "$root/init"
    chmod 755 "$root/init"
    cp "$vm_dir"/*.sh "$root/lab/"
    cp "$vm_dir"/scenarios/*.sh "$root/lab/scenarios/"
    cp "$vm_dir"/runtime/guest*.sh "$root/lab/runtime/"
    cp "$helper_dir"/* "$root/lab/bin/"
    if [ -n "$cgleak_bin" ]; then
        cp "$cgleak_bin" "$root/lab/bin/cgleak"
        # debug info is useless in the guest and triples the initramfs
        strip "$root/lab/bin/cgleak" 2>/dev/null || true
    fi
    if [ -n "${stalls_bin:-}" ]; then
        cp "$stalls_bin" "$root/lab/bin/stalls"
        strip "$root/lab/bin/stalls" 2>/dev/null || true
        printf '%s\n' "$stalls_args" > "$root/lab/stalls.args"
    fi
    add_modules "$kdir" "$root" virtio_pci virtio_blk lzo-rle lzo zram
    (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$out.tmp"
    mv "$out.tmp" "$out"
    rm -rf "$root"
}

# ---------------------------------------------------------------- boots
# boot NAME KDIR INITRD SCENARIOS EXTRA_CMDLINE TIMEOUT [RUNTIME_IMG]: runs one guest, log in
# $logs/NAME.log; RUNTIME_IMG (boot C) is attached read-only as /dev/vdc (both kernels' guests
# share the one cached image). BOOT_MEM (MiB) and BOOT_DISK (truncate size) override the
# guest memory ($mem) and the lab disk's size (1G) for one boot.
boot() {
    local name=$1 kdir=$2 initrd=$3 scenarios=$4 extra=$5 tmo=$6 rt=${7:-}
    local rtdrive=()
    [ -n "$rt" ] && rtdrive=(-drive "file=$rt,if=virtio,format=raw,readonly=on")
    local vmlinuz disk="$cache/work/disk-$name.img" swap="$cache/work/swap-$name.img" rc=0 t0=$SECONDS
    vmlinuz=$(compgen -G "$kdir/boot/vmlinuz-*" | head -n1)
    rm -f "$disk"
    truncate -s "${BOOT_DISK:-1G}" "$disk"
    mkfs.ext4 -q -F -L cgleak-lab "$disk"
    rm -f "$swap"
    truncate -s 512M "$swap"
    timeout --kill-after=10 "$tmo" qemu-system-x86_64 \
        -nographic -no-reboot -nodefaults -serial stdio -monitor none \
        -machine q35 -cpu max -smp 1 -m "${BOOT_MEM:-$mem}" \
        -kernel "$vmlinuz" -initrd "$initrd" \
        -drive "file=$disk,if=virtio,format=raw,cache=unsafe" \
        -drive "file=$swap,if=virtio,format=raw,cache=unsafe" \
        "${rtdrive[@]}" \
        -append "console=ttyS0 panic=-1 loglevel=4 swapaccount=1 lab.scenarios=$scenarios $extra" \
        < /dev/null > "$logs/$name.log" 2>&1 || rc=$?
    tr -d '\r' < "$logs/$name.log" > "$logs/$name.clean" || true
    echo "$rc $((SECONDS - t0))" > "$logs/$name.rc"
    rm -f "$disk" "$swap"
}

# one kernel: group A (leak, remedy, repair; root use_hierarchy=1 as systemd sets it),
# group B (cgroup.memory=nokmem; the untouched bare root for use_hierarchy on 5.10; the memory
# doctor's OOM cases) and
# group C (the container runtimes on the runtime disk; root use_hierarchy=1 as on a node) and,
# only when asked, group D (the stall benchmark; root use_hierarchy=1 as on a node)
run_kernel() {
    local suite=$1 kdir=$2 initrd=$3
    local b=nokmem,oom
    case "$(basename "$kdir")" in 5.10.*) b=nokmem,use_hierarchy,oom ;; esac
    if [ "${CGLEAK_LAB_GROUP_A:-}" != none ]; then
        boot "$suite-A" "$kdir" "$initrd" "${CGLEAK_LAB_GROUP_A:-leak,remedy,repair}" "lab.root_use_hierarchy=1" 900
    fi
    if [ "${CGLEAK_LAB_GROUP_B:-}" != none ]; then
        boot "$suite-B" "$kdir" "$initrd" "${CGLEAK_LAB_GROUP_B:-$b}" "cgroup.memory=nokmem" 600
    fi
    if [ "${CGLEAK_LAB_GROUP_C:-}" != none ] && case " $runtime_suites " in *" $suite "*) true ;; *) false ;; esac; then
        boot "$suite-C" "$kdir" "$initrd" "${CGLEAK_LAB_GROUP_C:-runtime}" "lab.root_use_hierarchy=1" 900 "$runtime_img"
    fi
    if stalls_on; then
        BOOT_MEM=$stalls_mem BOOT_DISK=2G boot "$suite-D" "$kdir" "$initrd" "${CGLEAK_LAB_GROUP_D:-stalls}" "lab.root_use_hierarchy=1" 1800
    fi
}

# the scenario lines each group must print
expected() {
    case "$1" in
        *-A) echo leak.kernel leak.diagnose remedy.kernel remedy.reclaim repair.kernel \
            repair.migrate-back repair.rename repair.kill-resume ;;
        *-B) echo nokmem.kernel nokmem.diagnose
            local c
            for c in guaranteed burstable adj tie-pause-first tie-pause-last; do
                echo "oom.predict.$c oom.log.$c"
            done
            case "$2" in 5.10.*) echo use_hierarchy.kernel use_hierarchy.repair ;; esac ;;
        *-C) echo runtime.start
            local l
            for l in $(sed -n 's/^RUNTIME_LINES="\(.*\)"$/\1/p' "$vm_dir/scenarios/runtime.sh"); do
                echo "runtime.$l"
            done ;;
        *-D) echo stalls.bench ;;
    esac
}

# ---------------------------------------------------------------- main
main() {
    ensure_tools
    mkdir -p "$cache/work" "$logs"
    build_helpers
    build_stalls
    build_cgleak
    local -A kdirs=() initrds=()
    local s
    runtime_img=""
    [ "${CGLEAK_LAB_GROUP_C:-}" = none ] || runtime_img=$(fetch_runtimes)
    for s in $suites; do
        kdirs[$s]=$(fetch_kernel "$s")
        initrds[$s]="$cache/work/initramfs-$s.cpio.gz"
        pack_initramfs "${kdirs[$s]}" "${initrds[$s]}"
    done
    log "booting ($mem MiB$(stalls_on && echo ", boot D $stalls_mem MiB"), TCG); logs in $logs"
    local pids=()
    for s in $suites; do
        if [ "${CGLEAK_LAB_SERIAL:-0}" = 1 ]; then
            run_kernel "$s" "${kdirs[$s]}" "${initrds[$s]}"
        else
            run_kernel "$s" "${kdirs[$s]}" "${initrds[$s]}" &
            pids+=($!)
        fi
    done
    local p
    for p in "${pids[@]}"; do wait "$p"; done

    local fails=0 notrun=0 passes=0 g kver line name res detail
    echo
    echo "== cgleak kernel lab results (logs: $logs)"
    for s in $suites; do
        kver=$(basename "${kdirs[$s]}")
        for g in A B C D; do
            local f="$logs/$s-$g.clean"
            [ -f "$logs/$s-$g.rc" ] || continue
            read -r qrc secs < "$logs/$s-$g.rc"
            if ! grep -q '^LAB-END' "$f"; then
                echo "$kver boot-$g FAIL guest did not finish (qemu exit $qrc after ${secs}s; timeout 124): see $f"
                tail -n 20 "$f" | sed 's/^/    | /'
                fails=$((fails + 1))
            else
                echo "$kver boot-$g ok (${secs}s)"
            fi
            for name in $(expected "$s-$g" "$kver"); do
                line=$(grep -m1 "^SCENARIO $name " "$f" || true)
                if [ -z "$line" ]; then
                    echo "$kver $name FAIL no result line from the guest"
                    fails=$((fails + 1))
                    continue
                fi
                res=$(echo "$line" | cut -d' ' -f3)
                detail=$(echo "$line" | cut -d' ' -f4-)
                printf '%s %s %s %s\n' "$kver" "$name" "$res" "$detail"
                case "$res" in
                    PASS) passes=$((passes + 1)) ;;
                    NOT-RUN) notrun=$((notrun + 1)) ;;
                    *) fails=$((fails + 1)) ;;
                esac
            done
        done
    done
    echo
    echo "== observations"
    for s in $suites; do
        kver=$(basename "${kdirs[$s]}")
        for g in A B C D; do
            [ -f "$logs/$s-$g.clean" ] || continue
            grep -h '^OBS ' "$logs/$s-$g.clean" | sed "s/^OBS /$kver $g /" || true
        done
    done
    # the kernel's records of each OOM case (boot B, scenarios/oom.sh), one file per case: the
    # memory doctor's parser fixtures come from these (tests/fixtures/oom/lab-*.kmsg)
    for s in $suites; do
        kver=$(basename "${kdirs[$s]}")
        [ -f "$logs/$s-B.clean" ] || continue
        awk -v d="$logs" -v k="$kver" '
            /^KMSG / { f = d "/oom-" k "-" $2 ".kmsg"; sub(/^KMSG [^ ]+ /, ""); print > f }' "$logs/$s-B.clean"
    done
    echo
    echo "== issue 11's claims, verdicts computed by this run (boot C)"
    for s in $suites; do
        kver=$(basename "${kdirs[$s]}")
        [ -f "$logs/$s-C.clean" ] || continue
        grep -h '^OBS claim\.' "$logs/$s-C.clean" | sed "s/^OBS claim\./$kver /" || true
    done
    # the stall benchmark's reports (boot D, scenarios/stalls.sh), one file per kernel
    for s in $suites; do
        kver=$(basename "${kdirs[$s]}")
        [ -f "$logs/$s-D.clean" ] || continue
        sed -n 's/^STALLS //p' "$logs/$s-D.clean" > "$logs/stalls-$kver.txt"
        echo
        echo "== stall benchmark on $kver (TCG, 1 vCPU; $logs/stalls-$kver.txt)"
        if [ -s "$logs/stalls-$kver.txt" ]; then cat "$logs/stalls-$kver.txt"; else echo "(no report)"; fi
    done
    echo
    echo "lab: $passes passed, $fails failed, $notrun not run, in $((SECONDS - t_start))s"
    if [ "$fails" -gt 0 ]; then
        exit 1
    fi
    if [ "$notrun" -gt 0 ] && [ "$allow_notrun" != 1 ]; then
        echo "NOT-RUN scenarios count as failures (set CGLEAK_LAB_ALLOW_NOTRUN=1 to accept them)"
        exit 1
    fi
}

# sourced (e.g. to build the runtime image alone): only the functions
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
