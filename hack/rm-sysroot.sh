#!/usr/bin/env bash
# rm-sysroot.sh DIR...: remove folders that may hold ostree deployments,
# whose roots ostree makes immutable.
set -euo pipefail
for d in "$@"; do
  [[ -e $d ]] || continue
  find "$d" -xdev -type d -path '*/ostree/deploy/*/deploy/*' -prune -exec chattr -i {} + 2>/dev/null || true
  rm -rf "$d"
done
