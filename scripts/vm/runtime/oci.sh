# Host side of the runtime lab (sourced by scripts/vm-test.sh, bash): the containers' image,
# made locally from a static busybox, with nothing from a registry. One tar is both an OCI
# image layout (oci-layout, index.json, blobs/sha256/...: what `ctr images import` reads) and a
# `docker save` archive (manifest.json naming the same blobs: what `docker load` reads), so the
# two runtimes run the very same layer. The layer is an uncompressed tar (media type
# application/vnd.oci.image.layer.v1.tar), so its digest is also its diff_id.
OCI_REF=lab/busybox:latest

# oci_blob DIR FILE: move FILE into DIR/blobs/sha256/<digest>, print the digest (hex)
oci_blob() {
    local h
    h=$(sha256sum "$2" | cut -d' ' -f1)
    mv "$2" "$1/blobs/sha256/$h"
    echo "$h"
}

# oci_busybox_archive BUSYBOX WORKDIR OUT: a one-layer image whose /bin holds BUSYBOX (static)
# and a link per applet
oci_busybox_archive() {
    local bb=$1 w=$2 out=$3 a layer cfg man
    rm -rf "$w"
    mkdir -p "$w/rootfs/bin" "$w/rootfs/tmp" "$w/rootfs/proc" "$w/rootfs/sys" "$w/rootfs/dev" \
        "$w/rootfs/etc" "$w/img/blobs/sha256"
    cp "$bb" "$w/rootfs/bin/busybox"
    # the applet list of this very binary (a static busybox: running it on the host is harmless)
    for a in $("$bb" --list); do
        [ "$a" = busybox ] || ln -sf busybox "$w/rootfs/bin/$a"
    done
    echo 'root:x:0:0:root:/:/bin/sh' > "$w/rootfs/etc/passwd"
    echo 'root:x:0:' > "$w/rootfs/etc/group"
    tar -C "$w/rootfs" --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 \
        -cf "$w/layer.tar" .
    layer=$(oci_blob "$w/img" "$w/layer.tar")
    printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
        "$layer" > "$w/config.json"
    local csize lsize
    csize=$(stat -c %s "$w/config.json")
    lsize=$(stat -c %s "$w/img/blobs/sha256/$layer")
    cfg=$(oci_blob "$w/img" "$w/config.json")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
        "$cfg" "$csize" "$layer" "$lsize" > "$w/manifest.json"
    local msize
    msize=$(stat -c %s "$w/manifest.json")
    man=$(oci_blob "$w/img" "$w/manifest.json")
    printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"docker.io/%s","org.opencontainers.image.ref.name":"latest"}}]}' \
        "$man" "$msize" "$OCI_REF" > "$w/img/index.json"
    echo '{"imageLayoutVersion":"1.0.0"}' > "$w/img/oci-layout"
    printf '[{"Config":"blobs/sha256/%s","RepoTags":["%s"],"Layers":["blobs/sha256/%s"]}]' \
        "$cfg" "$OCI_REF" "$layer" > "$w/img/manifest.json"
    tar -C "$w/img" --numeric-owner --owner=0 --group=0 -cf "$out" .
}
