#!/usr/bin/env bash
# make bench: seedbuild against the upstream pipeline replay and a floor,
# on the same sample root, in one run. Each case runs once to warm up, then
# three times; the median wall time is used. Prints ratios, sizes and the
# peak RSS of seedbuild create. Run as root.
#
#   BENCH_DIR=/var/tmp/seedbuild-bench BENCH_SCALE=1 hack/bench.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${SEEDBUILD:-$here/../bin/seedbuild}
dir=${BENCH_DIR:-/var/tmp/seedbuild-bench}
scale=${BENCH_SCALE:-1}
runs=${BENCH_RUNS:-3}
cores=$(nproc)

"$here/rm-sysroot.sh" "$dir"
mkdir -p "$dir"
trap '"$here/rm-sysroot.sh" "$dir"' EXIT
export BUILDAH_ARGS="--root $dir/storage --runroot $dir/run --storage-driver overlay"
echo "bench: making the sample root (scale $scale) and the stand-in base in $dir" >&2
python3 "$here/mkroot.py" --out "$dir/root" --scale "$scale" --ostree >/dev/null
"$here/mkbase.sh" "$dir/root" localhost/bench-base:latest "$dir/base.tar" >/dev/null

# measure NAME CMD...: warm-up, then $runs timed runs; records the median
# seconds in $dir/NAME.time and the peak RSS (KiB) in $dir/NAME.rss. When
# $setup names a function, it runs (untimed, then sync) before every run.
setup=
measure() {
  local name=$1; shift
  echo "bench: $name" >&2
  [[ -n $setup ]] && $setup
  "$@" >/dev/null 2>&1
  for i in $(seq "$runs"); do
    [[ -n $setup ]] && $setup
    sync
    /usr/bin/time -f "%e %M" -o "$dir/$name.$i" "$@" >/dev/null 2>"$dir/$name.err" || { cat "$dir/$name.err" >&2; exit 1; }
  done
  python3 - "$dir" "$name" "$runs" <<'PY'
import sys, statistics
d, name, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
vals = [open("%s/%s.%d" % (d, name, i + 1)).read().split() for i in range(runs)]
open("%s/%s.time" % (d, name), "w").write("%.2f" % statistics.median(float(v[0]) for v in vals))
open("%s/%s.rss" % (d, name), "w").write("%d" % max(int(v[1]) for v in vals))
PY
}

excludes=(--exclude='*/.bash_history' --exclude='var/tmp/*' --exclude='var/log/*' --exclude='var/lib/lca'
  --exclude='var/lib/log/*' --exclude='var/lib/cni/bin/*' --exclude='var/lib/containers/*'
  --exclude='var/lib/kubelet/pods/*' --exclude='var/lib/ovn-ic/etc/*')

measure a "$bin" create -q --rootfs "$dir/root" --base "oci-archive:$dir/base.tar" --output "oci-archive:$dir/a.tar"
measure b "$bin" create -q --rootfs "$dir/root" --base "oci-archive:$dir/base.tar" --output "oci-archive:$dir/b.tar" --compression zstd
measure c "$here/lca-reference.sh" bootc "$dir/root" "$dir/c.tar" "oci-archive:$dir/base.tar"
measure d bash -c "tar c -C '$dir/root' ${excludes[*]} var etc | pigz -p $cores > '$dir/d.tgz'"

# Deploy: seedbuild's ostree executor on the native seed, against the
# upstream classic deploy replay, each into a fresh sysroot.
have_deploy=0
if "$bin" deploy --help >/dev/null 2>&1; then
  have_deploy=1
  "$here/lca-reference.sh" classic "$dir/root" "$dir/classic.tar" >/dev/null
  # A fresh sysroot for each run, made outside the timed part.
  fresh_sysroot() {
    "$here/rm-sysroot.sh" "$dir/sys"
    mkdir -p "$dir/sys"
    ostree admin init-fs --modern "$dir/sys" >/dev/null 2>&1
  }
  setup=fresh_sysroot
  measure e "$bin" --root "$dir/storage" --runroot "$dir/run" deploy -q "oci-archive:$dir/a.tar" --sysroot "$dir/sys" --stateroot bench --method ostree
  measure f "$here/lca-deploy-reference.sh" "$dir/classic.tar" "$dir/sys" bench
  setup=
fi

python3 - "$dir" "$have_deploy" <<'PY'
import os, sys
d, deploy = sys.argv[1], sys.argv[2] == "1"
t = lambda n: float(open("%s/%s.time" % (d, n)).read())
size = lambda f: os.path.getsize(os.path.join(d, f)) / 2**20
rss = int(open("%s/a.rss" % d).read()) / 1024
print("seedbuild bench (median wall time, %s)" % os.uname().nodename)
print("  (a) seedbuild create, gzip  %6.2f s  %7.1f MiB" % (t("a"), size("a.tar")))
print("  (b) seedbuild create, zstd  %6.2f s  %7.1f MiB" % (t("b"), size("b.tar")))
print("  (c) upstream replay         %6.2f s  %7.1f MiB" % (t("c"), size("c.tar")))
print("  (d) floor: tar | pigz       %6.2f s  %7.1f MiB" % (t("d"), size("d.tgz")))
print("  a/c = %.2f (target <= 0.40)   b/c = %.2f (target <= 0.25)   a/d = %.2f (target <= 1.5)" % (t("a") / t("c"), t("b") / t("c"), t("a") / t("d")))
print("  peak RSS of (a) = %.0f MiB (target <= 512)" % rss)
if deploy:
    print("  (e) seedbuild deploy --method ostree  %6.2f s" % t("e"))
    print("  (f) upstream classic deploy replay    %6.2f s" % t("f"))
    print("  e/f = %.2f (target <= 0.70)" % (t("e") / t("f")))
PY
