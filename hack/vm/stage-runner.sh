#!/bin/sh
# Test harness only (the VM tests' node OS, never a seed by itself): mount
# the 9p share "xfer", run its stage.sh with its output in out/stage.log and
# its exit code in out/rc, then power off.
set -u
share=/run/seedbuild-xfer
say() { echo "seedbuild-vm-stage: $*" >/dev/console; }
mkdir -p "$share"
# The share's virtio channel shows up only once 9pnet_virtio has probed the
# device, which can come after the module loads ("no channels available
# for device xfer"): load it first, and try for a while.
modprobe 9pnet_virtio 2>/dev/null || true
tries=0
until mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576,cache=none xfer "$share" 2>/dev/null; do
  tries=$((tries + 1))
  [ "$tries" -ge 30 ] && break
  sleep 1
done
if ! mountpoint -q "$share"; then
  say "no 9p share named xfer after ${tries} s; powering off"
  systemctl poweroff --no-block
  exit 0
fi
mkdir -p "$share/out"
say "running stage $(cat "$share/stage.name" 2>/dev/null) on $(. /etc/os-release; echo "$VARIANT_ID") booted from $(sed -n 's/.*\(ostree=[^ ]*\).*/\1/p' /proc/cmdline)"
rc=0
bash "$share/stage.sh" >"$share/out/stage.log" 2>&1 || rc=$?
echo "$rc" >"$share/out/rc"
say "stage finished: rc=$rc"
sync
umount "$share" || true
systemctl poweroff --no-block
