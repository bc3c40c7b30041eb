#!/usr/bin/env bash
# Installs the Debian packages seedbuild's tests and demo need, only those
# missing, quietly. Run as root.
set -euo pipefail
# qemu-system-x86, mmdebstrap and e2fsprogs (debugfs, mkfs.ext4 -d) are for the
# booted-node (VM) tests; zlib1g-dev (libz.a), libselinux1-dev and
# libpcre2-dev (libselinux.a, libpcre2-8.a) are for the build, which links
# zlib in to decompress layers and libselinux to label commits;
# selinux-utils (sefcontext_compile) for a test of compiled file contexts;
# qemu-utils (qemu-io) and qemu-system-x86's qemu-storage-daemon write the
# write logs of the flush-point tests; strace watches what the release
# binary opens.
pkgs=(zlib1g-dev libselinux1-dev libpcre2-dev selinux-utils ostree runc podman buildah skopeo docker-registry pigz zstd python3 acl attr tar gzip openssl apache2-utils busybox-static ca-certificates qemu-system-x86 qemu-utils mmdebstrap e2fsprogs strace)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The distribution's registry starts itself as a service; the tests start
# their own on a free port instead.
systemctl disable --now docker-registry >/dev/null 2>&1 || true
