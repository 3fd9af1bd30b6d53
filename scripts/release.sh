#!/usr/bin/env bash
# Builds cgleak's release files in dist/ (gitignored):
#   dist/cgleak                 static Linux x86-64 binary (no dynamic loader: runs on any
#                               x86-64 node, RHEL/CentOS 7's glibc 2.17 included)
#   dist/completions/           cgleak.bash, _cgleak (zsh), cgleak.fish
#   dist/man/                   cgleak.1 and one page per command (cgleak-diagnose.1, ...)
#   dist/cgleak-VERSION-1.x86_64.rpm  RPM for RHEL/CentOS 7 and later (cargo-generate-rpm)
#   dist/cgleak_VERSION_amd64.deb     DEB with the same files (cargo-deb)
#   dist/SHA256SUMS             sha256sum of every file above (check: cd dist && sha256sum -c SHA256SUMS)
# Completions and man pages come from the built binary itself (its hidden `generate` command),
# so they always match its arguments.
#
# The build is cargo's, in the repository's target/ directory, so a second run only rebuilds
# what changed. Target: x86_64-unknown-linux-gnu with static glibc (crt-static); glibc may warn
# that getpwnam and friends need the runtime's NSS libraries: cgleak does not call them. Not
# musl: the force_empty time budget aims a POSIX timer at one thread (SIGEV_THREAD_ID), which
# nix offers on glibc only.
#
# Exit: 0 dist/ is complete; non-zero with a message on stderr otherwise (dist/ is then not
# trustworthy).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dist="$repo/dist"

die() {
    echo "release.sh: $*" >&2
    exit 1
}

command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs) to build cgleak"
command -v readelf >/dev/null || die "readelf not found (binutils): needed to check the binary is static"
command -v sha256sum >/dev/null || die "sha256sum not found (coreutils)"

target=x86_64-unknown-linux-gnu
# glibc links statically only with crt-static. A caller's encoded flags would override
# RUSTFLAGS and could drop it.
unset CARGO_ENCODED_RUSTFLAGS
export RUSTFLAGS="-C target-feature=+crt-static"

echo "release.sh: cargo build --release --target $target (RUSTFLAGS=$RUSTFLAGS)" >&2
(cd "$repo" && cargo build --release --locked --target "$target" --bin cgleak >&2) ||
    die "cargo build failed (see above)"
target_dir=${CARGO_TARGET_DIR:-target}
case $target_dir in /*) ;; *) target_dir="$repo/$target_dir" ;; esac
bin="$target_dir/$target/release/cgleak"
[ -x "$bin" ] || die "cargo build succeeded but $bin is missing"

# Static: no PT_INTERP program header (no dynamic loader asked for) and no shared library needed.
headers=$(readelf -lW "$bin") || die "readelf -l $bin failed"
if grep -q 'INTERP' <<<"$headers"; then
    die "$bin is dynamically linked (it has a PT_INTERP program header): $(grep -A1 INTERP <<<"$headers" | tr -s ' ')"
fi
if readelf -dW "$bin" | grep -q '(NEEDED)'; then
    die "$bin needs shared libraries: $(readelf -dW "$bin" | grep '(NEEDED)' | tr -s ' ')"
fi
readelf -hW "$bin" | grep -q 'Machine:.*X86-64' || die "$bin is not an x86-64 ELF binary"

# The packaging tools, pinned, from crates.io, into target/tools (reused when present: cargo
# install does nothing when that version is installed there already).
tools="$repo/target/tools"
tool() { # crate version
    if [ ! -x "$tools/bin/$1" ] || ! grep -q "^\"$1 $2 " "$tools/.crates.toml" 2>/dev/null; then
        echo "release.sh: cargo install --locked --version $2 $1 (into $tools)" >&2
        # Without the static-glibc RUSTFLAGS above: they would reach the tools' proc-macro
        # crates, which cannot be built with crt-static ("does not support these crate types").
        env -u RUSTFLAGS -u CARGO_ENCODED_RUSTFLAGS \
            CARGO_TARGET_DIR="$repo/target/tools-build" cargo install --locked --quiet \
            --version "$2" --root "$tools" "$1" >&2 || die "cargo install $1 $2 failed (see above)"
    fi
}

# Both packages take their metadata and file list from Cargo.toml ([package.metadata.deb],
# [package.metadata.generate-rpm]) and their files from dist/, so the packaged binary is the
# file in dist/, byte for byte (neither tool strips it: --no-strip, and generate-rpm never does).
# RPM: format v4 (cargo-generate-rpm's default; rpm 4.11 of EL7 reads no v6) with an xz payload:
# EL7's rpm 4.11 reads gzip and xz, not zstd (the default, which also adds
# rpmlib(PayloadIsZstd), unknown to it). See packaging/README.md.
build_packages() {
    tool cargo-generate-rpm 0.21.1
    tool cargo-deb 3.8.0
    (cd "$repo" && "$tools/bin/cargo-generate-rpm" generate-rpm --payload-compress xz \
        --auto-req no -o "$dist/" >&2) || die "cargo generate-rpm failed (see above)"
    (cd "$repo" && "$tools/bin/cargo-deb" deb --no-build --no-strip --locked \
        --output "$dist/" >&2) || die "cargo deb failed (see above)"
    local v
    v=$(cd "$repo" && cargo metadata --no-deps --format-version 1 --locked |
        sed -n 's/.*"name":"cgleak","version":"\([^"]*\)".*/\1/p')
    [ -n "$v" ] || die "cannot read cgleak's version from cargo metadata"
    [ -s "$dist/cgleak-$v-1.x86_64.rpm" ] || die "the RPM $dist/cgleak-$v-1.x86_64.rpm is missing"
    [ -s "$dist/cgleak_${v}_amd64.deb" ] || die "the DEB $dist/cgleak_${v}_amd64.deb is missing"
}

rm -rf "$dist"
mkdir -p "$dist/completions" "$dist/man"
# Debug info (profile.release has debug = 1, for backtraces in development) is not shipped.
if command -v strip >/dev/null; then
    strip --strip-debug -o "$dist/cgleak" "$bin"
else
    cp "$bin" "$dist/cgleak"
fi
chmod 755 "$dist/cgleak"

"$dist/cgleak" --version >/dev/null || die "the built binary does not run: $dist/cgleak --version failed"
"$dist/cgleak" generate completions bash >"$dist/completions/cgleak.bash"
"$dist/cgleak" generate completions zsh >"$dist/completions/_cgleak"
"$dist/cgleak" generate completions fish >"$dist/completions/cgleak.fish"
"$dist/cgleak" generate man "$dist/man"
for f in "$dist"/completions/* "$dist/man/cgleak.1"; do
    [ -s "$f" ] || die "generated file $f is empty"
done

build_packages

(cd "$dist" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum >SHA256SUMS)

echo "release.sh: $("$dist/cgleak" --version) in $dist:" >&2
(cd "$dist" && find . -type f | LC_ALL=C sort | sed 's|^\./|  |') >&2
