#!/usr/bin/env bash
# mknode.sh OUT
#
# Builds the bootable node OS that the VM tests use as a stand-in for RHCOS:
# a minimal Debian trixie (ostree 2025.2, as close to RHCOS's as Debian has)
# made with mmdebstrap, with systemd, the Debian
# kernel, dracut with ostree's module, ostree, ostree-boot, containers-common
# and podman (the node runs seedbuild's own image, as the README tells users
# to), and SELinux: Debian's reference policy (selinux-policy-default) in
# permissive mode, with every file of the commits labelled by that policy at
# build time (setfiles before the commit), as RHCOS is. It is trimmed
# of what a VM does not need (most kernel modules, docs, man pages,
# locales).
#
# Two versions come out, in OUT:
#   repo/             a bare ostree repo with
#                       node/x  the OS that the nodes run
#                       node/y  X plus a version marker, the seed's base
#   y.oci-archive     Y as a bootc-layout OCI image (/etc in place,
#                     containers.bootc=1, ostree.bootable=1)
#   yu.oci-archive    the same without any xattr: a base that carries an
#                     SELinux policy and no labels, as one built with
#                     buildah on a host without SELinux is
#   kver              the kernel version
#   done              written last: OUT is complete
#
# Every node OS image also carries the test harness's stage runner
# (seedbuild-vm-stage.service): at boot it mounts the 9p share "xfer", runs
# its stage.sh, writes the results back and powers off. It belongs to the
# test OS only, never to a seed seedbuild makes by itself.
#
# Needs root, mmdebstrap, ostree, python3 and the network to Debian's
# package archive. Takes a few minutes.
set -euo pipefail

die() { echo "mknode: $*" >&2; exit 2; }
[[ $# -eq 1 ]] || die "usage: mknode.sh OUT"
out=$1
[[ $(id -u) -eq 0 ]] || die "run as root"
for t in mmdebstrap ostree python3; do
  command -v "$t" >/dev/null || die "$t is missing (apt-get install $t)"
done
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(realpath "$out")
rm -f "$out/done"

log() { printf 'mknode: %s (%ds)\n' "$*" "$SECONDS" >&2; }

rootfs=$out/rootfs
rm -rf "$rootfs"

# The modules the VM needs: virtio disk and PCI, ext4, 9p for the share,
# overlay for containers-storage, loop for good measure. Everything else is
# removed after dracut ran.
keep_modules='/(virtio[^/]*|virtio_blk|virtio_pci[^/]*|virtio_ring|virtio_console|ext4|jbd2|mbcache|crc16|crc32c[^/]*|libcrc32c|9p|9pnet|9pnet_virtio|netfs|fscache|overlay|loop)\.ko'

pkgs=systemd,systemd-sysv,udev,dbus,kmod,linux-image-amd64,dracut,dracut-core,ostree,ostree-boot,golang-github-containers-common,podman,e2fsprogs,util-linux,mount,procps,tar,gzip,zstd,python3-minimal,python3-gi,gir1.2-ostree-1.0,bubblewrap,selinux-policy-default,policycoreutils,selinux-utils

suite=${MKNODE_SUITE:-trixie}
log "bootstrapping Debian $suite"
# Docs, man pages and locales are never unpacked; dracut builds a generic
# (not host-only) initramfs with only the drivers a virtio VM needs.
mmdebstrap ${MKNODE_MMDEBSTRAP_FLAGS:---quiet} --variant=minbase --include="$pkgs" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --essential-hook='mkdir -p "$1/etc/dracut.conf.d" && printf "%s\n" "hostonly=\"no\"" "add_dracutmodules+=\" ostree systemd \"" "omit_dracutmodules+=\" i18n plymouth network network-legacy ifcfg nfs iscsi lvm mdraid dm crypt multipath btrfs resume nvdimm fcoe fcoe-uefi biosdevname \"" "drivers=\"virtio_blk virtio_pci virtio_console ext4\"" "compress=\"gzip\"" >"$1/etc/dracut.conf.d/10-seedbuild-vm.conf"' \
  "$suite" "$rootfs" http://deb.debian.org/debian

kver=$(ls "$rootfs/lib/modules")
[[ $(wc -w <<<"$kver") -eq 1 ]] || die "want one kernel, found: $kver"
echo "$kver" >"$out/kver"
log "kernel $kver"

# The kernel and initramfs where ostree and bootc look for them.
moddir=$rootfs/usr/lib/modules/$kver
initrd=$rootfs/boot/initrd.img-$kver
[[ -f $initrd ]] || die "no initramfs at $initrd: dracut did not run"
mv "$rootfs/boot/vmlinuz-$kver" "$moddir/vmlinuz"
mv "$initrd" "$moddir/initramfs.img"
find "$rootfs/boot" -mindepth 1 -delete

find "$moddir/kernel" -name '*.ko*' | grep -Ev "$keep_modules" | xargs rm -f
find "$moddir/kernel" -type d -empty -delete
chroot "$rootfs" depmod -a "$kver"

# The test harness's stage runner.
install -D -m 0755 "$here/vm/stage-runner.sh" "$rootfs/usr/libexec/seedbuild-vm-stage"
install -D -m 0644 "$here/vm/seedbuild-vm-stage.service" "$rootfs/usr/lib/systemd/system/seedbuild-vm-stage.service"
mkdir -p "$rootfs/usr/lib/systemd/system/multi-user.target.wants"
ln -sf ../seedbuild-vm-stage.service "$rootfs/usr/lib/systemd/system/multi-user.target.wants/seedbuild-vm-stage.service"
# A login would only wait on the console for nobody.
rm -f "$rootfs/etc/systemd/system/getty.target.wants/"* "$rootfs/etc/systemd/system/multi-user.target.wants/"apt*

# SELinux on, permissive: the kernel arguments the nodes boot with
# (security=selinux selinux=1 enforcing=0) turn it on; the policy is the
# one this OS ships. The policy's module store under /var is only needed to
# change the policy, and /var starts empty.
printf 'SELINUX=permissive\nSELINUXTYPE=default\n' >"$rootfs/etc/selinux/config"
# podman labels containers with container-selinux's types, which Debian's
# reference policy does not have (mounting a container's /dev/shm with
# them fails): on this node containers run unlabelled. Their cgroups are
# made by podman itself (cgroupfs), not through systemd over D-Bus, which
# trixie's crun could not reach from the stage runner ("cannot open
# sd-bus: Connection refused").
mkdir -p "$rootfs/etc/containers"
printf '[containers]\nlabel = false\n[engine]\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' >"$rootfs/etc/containers/containers.conf"
[[ -f $rootfs/etc/selinux/default/contexts/files/file_contexts ]] || die "selinux-policy-default installed no file_contexts"
# ostree's deploy over an earlier deployment of the same stateroot runs
# `semodule -N --rebuild-if-modules-changed` in the new deployment, in
# bwrap, with the deployment's own (empty) /var: the policy's module store
# lives under /etc/selinux, as on Fedora's and RHCOS's ostree systems, not
# in Debian's /var/lib/selinux.
cp -a "$rootfs/var/lib/selinux/default/." "$rootfs/etc/selinux/default/"
echo 'store-root = /etc/selinux' >>"$rootfs/etc/selinux/semanage.conf"

# An ostree OS: /etc becomes /usr/etc, /var starts empty (systemd-tmpfiles
# fills it), the mount points stay as empty folders.
log "laying the tree out for ostree"
printf '' >"$rootfs/etc/machine-id"
rm -rf "$rootfs/usr/etc"
find "$rootfs/var" -mindepth 1 -delete
for d in dev proc sys run tmp; do
  find "$rootfs/$d" -mindepth 1 -delete 2>/dev/null || true
done
chmod 1777 "$rootfs/tmp"
install -d -m 0755 "$rootfs/sysroot" "$rootfs/boot"
rm -rf "$rootfs/ostree" && ln -s sysroot/ostree "$rootfs/ostree"
# root's home lives under /var, as on RHCOS.
rm -f "$rootfs"/vmlinuz* "$rootfs"/initrd.img*
rm -rf "$rootfs/root" "$rootfs/home" "$rootfs/srv" "$rootfs/opt" "$rootfs/mnt" "$rootfs/media"
ln -s var/roothome "$rootfs/root"
ln -s var/home "$rootfs/home"
ln -s var/srv "$rootfs/srv"
ln -s var/opt "$rootfs/opt"
ln -s var/mnt "$rootfs/mnt"
cat >"$rootfs/usr/lib/tmpfiles.d/seedbuild-vm.conf" <<'EOF'
d /var/roothome 0700 root root -
d /var/home 0755 root root -
d /var/srv 0755 root root -
d /var/opt 0755 root root -
d /var/mnt 0755 root root -
d /var/lib/containers 0700 root root -
EOF
echo "VARIANT_ID=seedbuild-vm-x" >>"$rootfs/usr/lib/os-release"

# Every file labelled by the OS's own policy, laid out as it boots, with
# /etc still /etc: ostree commit --selinux-policy of this ostree would label
# /usr/etc by the policy's rule for /usr/etc, not as the /etc it becomes;
# rpm-ostree labels it as /etc, and so does this. The commits keep these
# labels.
log "labelling the tree with its own SELinux policy"
# (libselinux sets labels through /proc/self/fd.)
mount -t proc proc "$rootfs/proc"
trap 'umount "$rootfs/proc" 2>/dev/null || true' EXIT
chroot "$rootfs" setfiles -F /etc/selinux/default/contexts/files/file_contexts / >"$out/setfiles.log" 2>&1 ||
  die "setfiles failed: $(tail -3 "$out/setfiles.log")"
[[ ! -s $out/setfiles.log ]] || die "setfiles: $(head -3 "$out/setfiles.log")"
# The mount point under /proc is labelled as the policy says, too.
proc_label=$(chroot "$rootfs" matchpathcon -n /proc)
umount "$rootfs/proc"
python3 -c 'import os, sys; os.setxattr(sys.argv[1], "security.selinux", sys.argv[2].encode() + b"\0")' "$rootfs/proc" "$proc_label"
mv "$rootfs/etc" "$rootfs/usr/etc"

log "committing X and Y"
repo=$out/repo
rm -rf "$repo"
ostree init --repo="$repo" --mode=bare
ostree commit --repo="$repo" --branch=node/x --subject="node OS X" \
  --timestamp=@1700000000 --tree=dir="$rootfs" >/dev/null
marker=$out/marker
rm -rf "$marker" && mkdir -p "$marker/usr/lib"
sed 's/^VARIANT_ID=.*/VARIANT_ID=seedbuild-vm-y/' "$rootfs/usr/lib/os-release" >"$marker/usr/lib/os-release"
printf 'Y\n' >"$marker/usr/lib/seedbuild-vm-version"
# Y's files and folders carry the labels their place in X has.
python3 - "$rootfs" "$marker" <<'PY'
import os, sys
root, marker = sys.argv[1:]
for d, dirs, files in os.walk(marker):
    for name in [""] + dirs + files:
        p = os.path.join(d, name)
        rel = os.path.relpath(p, marker)
        src = os.path.join(root, rel)
        if not os.path.exists(src):
            src = os.path.join(root, "usr/lib/os-release")
        os.setxattr(p, "security.selinux", os.getxattr(src, "security.selinux"), follow_symlinks=False)
PY
ostree commit --repo="$repo" --branch=node/y --subject="node OS Y" \
  --timestamp=@1700000100 --tree=ref=node/x --tree=dir="$marker" >/dev/null
rm -rf "$marker"

log "writing Y as a bootc image"
ytree=$out/ytree
rm -rf "$ytree"
ostree checkout --repo="$repo" -H node/y "$ytree"
mv "$ytree/usr/etc" "$ytree/etc"
# zstd, not gzip: the VM unpacks Y in every deploy of a seed, and under TCG
# zstd decompresses it about 4 times faster (4 s against 17 s for Y's layer).
python3 "$here/dir2oci.py" --tree "$ytree" --out "$out/y.oci-archive" --compression zstd \
  --label containers.bootc=1 --label ostree.bootable=1 \
  --label org.opencontainers.image.version=y
python3 "$here/dir2oci.py" --tree "$ytree" --out "$out/yu.oci-archive" --compression zstd --no-xattrs \
  --label containers.bootc=1 --label ostree.bootable=1 \
  --label org.opencontainers.image.version=y
rm -rf "$ytree" "$rootfs"
du -sh "$repo" "$out/y.oci-archive" "$out/yu.oci-archive" >&2
touch "$out/done"
log "done"
