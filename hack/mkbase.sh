#!/usr/bin/env bash
# mkbase.sh ROOT TAG [OUT.oci-archive]
#
# Turns the OS part of a mkroot.py tree into a stand-in for a bootc base
# image (what `FROM <spec.osImageURL>` would give on a real cluster, where we
# cannot pull RHCOS): usr/ as is, usr/etc again as /etc, empty /sysroot, /boot,
# /dev, /proc, /sys, /run, /tmp (1777)
# and /var, /ostree -> sysroot/ostree, usr/lib/ostree/prepare-root.conf, and
# the bootc labels. The image is tagged TAG in buildah's storage and, if
# OUT.oci-archive is given, also written there. Prints TAG.
#
# Environment:
#   MKBASE_EXTRA=DIR   copy DIR's content over the image root before the build
#                      (e.g. a bootc stand-in at DIR/usr/bin/bootc)
#   MKBASE_WRITER=dir2oci  write OUT.oci-archive with hack/dir2oci.py (no
#                      container engine; TAG is not made in storage): much
#                      faster for a big base
#   BUILDAH_ARGS="..." global buildah flags put on every buildah call, e.g.
#                      "--root /x/root --runroot /x/run --storage-driver vfs"
#
# Needs Debian's buildah; run as root.
set -euo pipefail

die() { echo "mkbase: $*" >&2; exit 2; }
[[ $# -ge 2 && $# -le 3 ]] || die "usage: mkbase.sh ROOT TAG [OUT.oci-archive]"
src=$(realpath -e "$1") || die "no such root: $1"
tag=$2
archive=${3:-}
[[ -d $src/usr/etc ]] || die "$src has no usr/etc"

read -r -a gflags <<<"${BUILDAH_ARGS:-}"
bh() { buildah "${gflags[@]}" "$@"; }

ctx=$(mktemp -d /var/tmp/mkbase-ctx.XXXXXX)
cleanup() { rm -rf "$ctx"; }
trap cleanup EXIT

# Image root, laid out in $ctx/rootfs; the build file lives beside it so it
# does not end up in the image.
img=$ctx/rootfs
mkdir -p "$img"
cp -a "$src/usr" "$img/"
cp -a "$src/usr/etc" "$img/etc"
install -d -m 0755 "$img/sysroot" "$img/boot" "$img/var" "$img/usr/lib/ostree" "$img/dev" "$img/proc" "$img/sys" "$img/run"
install -d -m 1777 "$img/tmp"
ln -s sysroot/ostree "$img/ostree"
cat >"$img/usr/lib/ostree/prepare-root.conf" <<'EOF'
[composefs]
enabled = true
EOF
if [[ -n ${MKBASE_EXTRA:-} ]]; then
  [[ -d $MKBASE_EXTRA ]] || die "MKBASE_EXTRA=$MKBASE_EXTRA is not a folder"
  cp -a "$MKBASE_EXTRA/." "$img/"
fi

if [[ ${MKBASE_WRITER:-} == dir2oci ]]; then
  [[ -n $archive ]] || die "MKBASE_WRITER=dir2oci needs OUT.oci-archive"
  python3 "$(dirname "$0")/dir2oci.py" --tree "$img" --out "$archive" \
    --label containers.bootc=1 --label ostree.bootable=1 --label org.opencontainers.image.version=420.0.0 >/dev/null
  echo "$tag"
  exit 0
fi

cat >"$ctx/Containerfile" <<'EOF'
FROM scratch
COPY . /
LABEL containers.bootc=1 ostree.bootable=1 org.opencontainers.image.version=420.0.0
EOF

# Limits cannot be raised here, so hand the current ones to the build as is.
bh bud --quiet --isolation chroot --timestamp 1700000000 \
  --ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit "nproc=$(ulimit -Su):$(ulimit -Hu)" \
  --file "$ctx/Containerfile" --tag "$tag" "$img" >/dev/null

if [[ -n $archive ]]; then
  rm -f "$archive"
  bh push --quiet "$tag" "oci-archive:$archive" >/dev/null
fi
echo "$tag"
