#!/bin/sh
# Test harness only (the VM tests' node OS, never a seed by itself): mount
# the 9p share "xfer", run its stage.sh with its output in out/stage.log and
# its exit code in out/rc, then power off.
set -u
share=/run/seedbuild-xfer
say() { echo "seedbuild-vm-stage: $*" >/dev/console; }
mkdir -p "$share"
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=1048576,cache=none xfer "$share"; then
  say "no 9p share named xfer; powering off"
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
