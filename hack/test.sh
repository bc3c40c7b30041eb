#!/usr/bin/env bash
# make test's go test run: the booted-node tests (TestBooted*: qemu under
# TCG, chains of boots) run in a second go test process beside all the
# others, which mostly wait on disks, registries and services. The
# booted-node tests run in parallel with each other; their boots share
# SEEDBUILD_VM_SLOTS (2) VMs at a time. Both halves' results are printed;
# the run fails if either fails. The booted-node tests run with -v: their
# log then says how long each boot took, and with how many vCPUs. The
# others run with -v too, into a file: on success only the package lines
# and their 15 slowest tests are printed, on failure the whole log.
#
#   GO=go hack/test.sh [go test flags, but -run and -skip...]
set -uo pipefail
go=${GO:-go}
booted='^TestBooted'
log=$(mktemp /var/tmp/seedbuild-booted-tests.XXXXXX)
restlog=$(mktemp /var/tmp/seedbuild-tests.XXXXXX)
vm=
# On an interrupt the booted-node tests (and their VMs) stop too.
trap '[[ -n $vm ]] && kill "$vm" 2>/dev/null; rm -f "$log" "$restlog"' EXIT
trap 'exit 130' INT TERM
echo "test: the booted-node tests ($booted) run beside the others; their output follows theirs" >&2
"$go" test -v -parallel 8 "$@" -run "$booted" ./tests >"$log" 2>&1 &
vm=$!
"$go" test -v "$@" -skip "$booted" ./... >"$restlog" 2>&1
rest=$?
if ((rest == 0)); then
  grep -E '^(ok|\?|FAIL)\b' "$restlog"
  echo "--- the 15 slowest of them:"
  grep -E '^--- (PASS|SKIP)' "$restlog" | sed -E 's/.*: (.*) \(([0-9.]+)s\)$/\2 \1/' | sort -rn | head -15
else
  cat "$restlog"
fi
wait "$vm"
vmrc=$?
echo "--- the booted-node tests ($booted), exit $vmrc:"
cat "$log"
if ((rest != 0 || vmrc != 0)); then
  echo "test: FAILED (the others: exit $rest; the booted-node tests: exit $vmrc)" >&2
  exit 1
fi
