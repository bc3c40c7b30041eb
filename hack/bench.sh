#!/usr/bin/env bash
# make bench: seedbuild against the upstream pipeline replay and floors, on
# the same sample roots, in one run. Run as root.
#
# Two OS bases, each as an OCI image (the seed's base) and as the same tree
# committed to ostree (the classic reference's ostree.tgz):
#   small  the mkroot.py stand-in (a few MB)
#   rhcos  an RHCOS-sized one: mkroot.py --os-bulk-mb 1536 (1.5 GiB more in
#          43k files)
#   rhcos-policy  the same with an SELinux policy (mkroot.py --selinux-policy,
#          hack/mkpolicy.py: about 4,400 file contexts) and no labels on its
#          files, as a base built on a host without SELinux: the native
#          seed's deploy labels every file by it. The classic seed's ostree
#          commit is labelled already, as an RHCOS node's is. Only the
#          deploy lines (e, f, g) run on it; (a) and (l) make the seeds.
# Each line runs once to warm up, then BENCH_RUNS times (default 3); the
# median wall time is used, with the peak RSS of seedbuild's lines. Then
# seedbuild's create and deploy run once at scales 0.25, 1 and 4, so that
# growth with the size of /var is visible.
#
#   BENCH_DIR=/var/tmp/seedbuild-bench BENCH_SCALE=1 BENCH_BASES="small rhcos" hack/bench.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${SEEDBUILD:-$here/../bin/seedbuild}
dir=${BENCH_DIR:-/var/tmp/seedbuild-bench}
scale=${BENCH_SCALE:-1}
runs=${BENCH_RUNS:-3}
bases=${BENCH_BASES-small rhcos rhcos-policy}
sweep=${BENCH_SWEEP-0.25 1 4}
cores=$(nproc)

# Where the bench writes. ext4 without a journal (as on some VM disks) is
# slow to reuse an inode freed in the last 60 s, or in the last 360 s while
# its inode table block is dirty (RECENTCY_MIN and RECENTCY_DIRTY in the
# kernel's fs/ext4/ialloc.c), and making a file dirties its block. So any
# line that followed the removal of tens of thousands of files (an earlier
# run's output, or its own warm-up's temporary files) scanned past them on
# most of its files, however long it had waited: a profile of seedbuild's
# deploy after a 61 s wait spent 10 s of CPU in openat (recently_deleted),
# against 0.9 s where nothing had been removed. Nodes do not pay that
# (RHCOS is on xfs; ext4 with a journal has no such check). On such a
# disk the bench therefore runs in an ext4 file system with a journal,
# made in a sparse file beside $dir and mounted on $dir through a loop
# device with direct I/O (no second page cache). BENCH_LOOPFS=no runs on
# the disk as it is.
release_dir() {
  if mountpoint -q "$dir"; then
    findmnt -rn -o TARGET | { grep "^$dir/" || true; } | sort -r | xargs -r umount
    umount "$dir"
  fi
  [[ -e $dir.img ]] && losetup -j "$dir.img" -O NAME -n | xargs -r -n1 losetup -d
  "$here/rm-sysroot.sh" "$dir" "$dir.img"
}
release_dir
mkdir -p "$dir"
trap release_dir EXIT
dev=$(findmnt -no SOURCE --target "$dir" 2>/dev/null || true)
fstype=$(findmnt -no FSTYPE --target "$dir" 2>/dev/null || true)
if [[ $fstype == ext4 && ! -e /proc/fs/jbd2/${dev##*/}-8 ]]; then
  if [[ ${BENCH_LOOPFS:-yes} == no ]]; then
    echo "bench: $dir is on ext4 without a journal; running there anyway (BENCH_LOOPFS=no): lines that follow a removal are slowed" >&2
  else
    # As big as the disk's free space allows, less 8 GiB, up to 64 GiB
    # (the RHCOS-size base's lines use about 40).
    size=$(($(df --output=avail -B1G "$dir" | tail -1) - 8))
    ((size > 64)) && size=64
    echo "bench: $dir is on ext4 without a journal: running in an ext4 file system with a journal, in $dir.img (sparse, ${size} GiB at most)" >&2
    truncate -s "${size}G" "$dir.img"
    mkfs.ext4 -q -F -j "$dir.img"
    mount "$(losetup --direct-io=on -f --show "$dir.img")" "$dir"
  fi
fi
# On this ostree (no admin set-default) seedbuild's ostree method deploys a
# second time, over the first, and ostree then runs the image's semodule in
# bubblewrap when the image carries a policy (seedbuild refuses the deploy
# up front without /usr/bin/bwrap): the policy base needs it.
if [[ " $bases " == *" rhcos-policy "* && ! -x /usr/bin/bwrap ]]; then
  echo "bench: installing bubblewrap, for the rhcos-policy base's deploy" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
fi
# Every tool's temporary files are on the same file system as the rest,
# as /var/tmp is on a node: the replays' ostree pull-local links objects
# from their scratch folders rather than copying them.
export TMPDIR=$dir/tmp
mkdir -p "$TMPDIR"
export BUILDAH_ARGS="--root $dir/storage --runroot $dir/run --storage-driver overlay"
sb=("$bin" --root "$dir/storage" --runroot "$dir/run")

# measure NAME CMD...: warm-up, then $runs timed runs; records the median
# seconds in $dir/NAME.time and the peak RSS (KiB) in $dir/NAME.rss. When
# $setup names a function, it runs (untimed, then sync) before every run.
setup=
measure() {
  local name=$1; shift
  echo "bench: $name" >&2
  [[ -n $setup ]] && $setup
  "$@" >/dev/null 2>"$dir/$name.err" || { cat "$dir/$name.err" >&2; exit 1; }
  local n=$runs
  [[ ${once:-0} == 1 ]] && n=1
  for i in $(seq "$n"); do
    [[ -n $setup ]] && $setup
    sync
    /usr/bin/time -f "%e %M" -o "$dir/$name.$i" "$@" >/dev/null 2>"$dir/$name.err" || { cat "$dir/$name.err" >&2; exit 1; }
  done
  python3 - "$dir" "$name" "$n" <<'PY'
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

fresh_sysroot() {
  "$here/rm-sysroot.sh" "$dir/sys"
  mkdir -p "$dir/sys"
  ostree admin init-fs --modern "$dir/sys" >/dev/null 2>&1
}
fresh_floor() { rm -rf "$dir/floor"; mkdir -p "$dir/floor"; }
fresh_tag() { buildah $BUILDAH_ARGS rmi -f localhost/bench-seed:tag >/dev/null 2>&1 || true; buildah $BUILDAH_ARGS rmi -f localhost/bench-pull:latest >/dev/null 2>&1 || true; }

# write_floor ARCHIVE DEST: the seed's layers unpacked once into DEST, in
# order, with GNU tar: writing the unpacked bytes once.
write_floor() {
  local lay=$dir/floor-layout
  rm -rf "$lay" && mkdir -p "$lay" && tar xf "$1" -C "$lay"
  python3 - "$lay" <<'PY' | while read -r blob; do tar xzf "$lay/blobs/sha256/$blob" -C "$2" --numeric-owner --xattrs --xattrs-include='*'; done
import json, sys
lay = sys.argv[1]
idx = json.load(open(lay + "/index.json"))
m = json.load(open(lay + "/blobs/sha256/" + idx["manifests"][0]["digest"].split(":")[1]))
for l in m["layers"]:
    print(l["digest"].split(":")[1])
PY
}
export -f write_floor

# bench_base NAME SCALE [mkroot flags]: every line on one base.
bench_base() {
  local b=$1 s=$2; shift 2
  local root=$dir/root-$b
  echo "bench: making the sample root ($b base, scale $s) in $root" >&2
  python3 "$here/mkroot.py" --out "$root" --scale "$s" --ostree "$@" >"$dir/$b.mkroot.json"
  MKBASE_WRITER=dir2oci "$here/mkbase.sh" "$root" localhost/bench-base-$b "$dir/$b-base.tar" >/dev/null
  du -sb "$root/usr" | cut -f1 >"$dir/$b.ossize"
  find "$root/usr" -type f | wc -l >"$dir/$b.osfiles"
  if [[ $b == *-policy ]]; then
    # The seeds the deploy lines deploy, timed once.
    once=1 measure "$b-a" "${sb[@]}" create -q --rootfs "$root" --base "oci-archive:$dir/$b-base.tar" --output "oci-archive:$dir/$b-a.tar"
    once=1 measure "$b-l" "$here/lca-reference.sh" classic "$root" "$dir/$b-classic.tar"
  else
    bench_creates "$b" "$root"
  fi
  setup=fresh_sysroot
  measure "$b-e" "${sb[@]}" deploy -q "oci-archive:$dir/$b-a.tar" --sysroot "$dir/sys" --stateroot bench --method ostree
  measure "$b-f" "$here/lca-deploy-reference.sh" "$dir/$b-classic.tar" "$dir/sys" bench
  [[ $b == *-policy ]] || measure "$b-h" "${sb[@]}" deploy -q "oci-archive:$dir/$b-classic.tar" --sysroot "$dir/sys" --stateroot bench
  setup=fresh_floor
  measure "$b-g" bash -c "write_floor '$dir/$b-a.tar' '$dir/floor'"
  setup=
  "$here/rm-sysroot.sh" "$root" "$dir/sys" "$dir/floor" "$dir/floor-layout"
}

# bench_creates NAME ROOT: the create lines and the floors beside them.
bench_creates() {
  local b=$1 root=$2
  measure "$b-a" "${sb[@]}" create -q --rootfs "$root" --base "oci-archive:$dir/$b-base.tar" --output "oci-archive:$dir/$b-a.tar"
  measure "$b-b" "${sb[@]}" create -q --rootfs "$root" --base "oci-archive:$dir/$b-base.tar" --output "oci-archive:$dir/$b-b.tar" --compression zstd
  measure "$b-m" "${sb[@]}" create -q --layout bootc-tarball --rootfs "$root" --base "oci-archive:$dir/$b-base.tar" --output "oci-archive:$dir/$b-m.tar"
  measure "$b-c" "$here/lca-reference.sh" bootc "$root" "$dir/$b-c.tar" "oci-archive:$dir/$b-base.tar"
  measure "$b-k" "${sb[@]}" create -q --layout classic --rootfs "$root" --output "oci-archive:$dir/$b-k.tar"
  # The upstream classic seed is also what (f) and (h) deploy.
  measure "$b-l" "$here/lca-reference.sh" classic "$root" "$dir/$b-classic.tar"
  measure "$b-d" bash -c "tar c -C '$root' ${excludes[*]} var etc | pigz -p $cores > '$dir/$b-d.tgz'"
  setup=fresh_tag
  measure "$b-i" "${sb[@]}" create -q --rootfs "$root" --base "oci-archive:$dir/$b-base.tar" --tag localhost/bench-seed:tag
  measure "$b-j" skopeo copy -q "oci-archive:$dir/$b-a.tar" "containers-storage:[overlay@$dir/storage+$dir/run]localhost/bench-pull:latest"
  setup=
}

for b in $bases; do
  case $b in
  small) bench_base small "$scale" ;;
  rhcos) bench_base rhcos "$scale" --os-bulk-mb "${BENCH_OS_MB:-1536}" ;;
  rhcos-policy) bench_base rhcos-policy "$scale" --os-bulk-mb "${BENCH_OS_MB:-1536}" --selinux-policy ;;
  *) echo "bench: unknown base $b (small, rhcos, rhcos-policy)" >&2; exit 2 ;;
  esac
done

# Growth: create and deploy once at each scale, on the small base.
for s in $sweep; do
  root=$dir/root-sweep
  python3 "$here/mkroot.py" --out "$root" --scale "$s" --ostree >"$dir/sweep-$s.mkroot.json"
  [[ -f $dir/sweep-base.tar ]] || MKBASE_WRITER=dir2oci "$here/mkbase.sh" "$root" localhost/bench-sweep "$dir/sweep-base.tar" >/dev/null
  once=1 measure "sweep-$s-a" "${sb[@]}" create -q --rootfs "$root" --base "oci-archive:$dir/sweep-base.tar" --output "oci-archive:$dir/sweep-$s.tar"
  setup=fresh_sysroot
  once=1 measure "sweep-$s-e" "${sb[@]}" deploy -q "oci-archive:$dir/sweep-$s.tar" --sysroot "$dir/sys" --stateroot bench --method ostree
  setup=
  du -sb "$root/var" | cut -f1 >"$dir/sweep-$s.varsize"
  "$here/rm-sysroot.sh" "$root" "$dir/sys"
  rm -f "$dir/sweep-$s.tar"
done

# Precache: BENCH_PRECACHE_IMAGES images (default 40) that share two base
# layers, as release images do, about 2 GiB of unique blobs, in a local
# registry whose access log counts the bytes it serves. seedbuild precache
# against the agent's method replayed: podman pull of each image, 10 at a
# time, into a fresh store. Both at normal priority.
precache_images=${BENCH_PRECACHE_IMAGES-40}
if ((precache_images > 0)); then
  echo "bench: making $precache_images images sharing layers" >&2
  rm -rf "$dir/images" && python3 "$here/mkimages.py" --out "$dir/images" --count "$precache_images" \
    --base-mb "${BENCH_PRECACHE_BASE_MB:-600}" --own-mb "${BENCH_PRECACHE_OWN_MB:-20}" >"$dir/images.json"
  mkdir -p "$dir/registry"
  printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:0\n' "$dir/registry/data" >"$dir/registry/config.yml"
  docker-registry serve "$dir/registry/config.yml" >"$dir/registry/log" 2>&1 &
  regpid=$!
  trap 'kill $regpid 2>/dev/null || true; wait $regpid 2>/dev/null || true; release_dir' EXIT
  regaddr=
  for _ in $(seq 100); do
    port=$(ss -ltnpH 2>/dev/null | awk -v p="pid=$regpid," '$0 ~ p {split($4, a, ":"); print a[length(a)]; exit}')
    if [[ -n $port ]] && curl -fs "http://127.0.0.1:$port/v2/" >/dev/null; then regaddr=127.0.0.1:$port; break; fi
    sleep 0.2
  done
  [[ -n $regaddr ]] || { echo "bench: the registry did not start" >&2; cat "$dir/registry/log" >&2; exit 1; }
  python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["images"]))' "$dir/images.json" | while read -r name; do
    skopeo copy -q --dest-tls-verify=false "oci:$dir/images:${name%%:*}" "docker://$regaddr/workload/$name"
  done
  python3 -c 'import json,sys; print("\n".join("%s/workload/%s" % (sys.argv[2], n) for n in json.load(open(sys.argv[1]))["images"]))' "$dir/images.json" "$regaddr" >"$dir/precache.list"
  drop_stores() {
    # containers-storage's overlay driver bind-mounts its home: unmount
    # before removing.
    findmnt -rn -o TARGET | { grep "^$dir/pc-" || true; } | sort -r | xargs -r umount
    rm -rf "$dir/pc-storage" "$dir/pc-run"
  }
  fresh_stores() {
    drop_stores
    mark=$(wc -c <"$dir/registry/log")
    echo "$mark" >"$dir/registry/mark"
  }
  # served NAME: the blob bytes the registry served since the mark, by
  # its access log ("GET /v2/.../blobs/..." status size), summed over
  # the runs of NAME.
  served() { tail -c +$(($(cat "$dir/registry/mark") + 1)) "$dir/registry/log" | awk '/"GET \/v2\/[^ ]*\/blobs\// && $9 ~ /^2/ {s += $10} END {printf "%.0f\n", s}' >>"$dir/$1.served"; }
  pc_seedbuild() { "$bin" --root "$dir/pc-storage" --runroot "$dir/pc-run" precache --containers-list "$dir/precache.list" --tls-verify=false --priority normal && served pc-n; }
  pc_podman() { xargs -P 10 -n 1 podman --root "$dir/pc-storage" --runroot "$dir/pc-run" pull -q --tls-verify=false <"$dir/precache.list" && served pc-o; }
  export -f pc_seedbuild pc_podman served
  export bin dir
  rm -f "$dir/pc-n.served" "$dir/pc-o.served"
  setup=fresh_stores
  measure pc-n bash -c pc_seedbuild
  measure pc-o bash -c pc_podman
  setup=
  kill $regpid 2>/dev/null || true
  wait $regpid 2>/dev/null || true
  drop_stores
  rm -rf "$dir/images" "$dir/registry/data"
fi

python3 - "$dir" "$bases" "$sweep" <<'PY'
import os, sys
d, bases, sweep = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
t = lambda n: float(open("%s/%s.time" % (d, n)).read())
rss = lambda n: int(open("%s/%s.rss" % (d, n)).read()) / 1024
mib = lambda f: os.path.getsize(os.path.join(d, f)) / 2**20
num = lambda f: int(open(os.path.join(d, f)).read())
print("seedbuild bench (median wall time of %s runs, %s)" % (os.environ.get("BENCH_RUNS", "3"), os.uname().nodename))
for b in bases:
    print()
    print("%s base: %.0f MiB in %d files unpacked; OS image %.0f MiB" % (b, num(b + ".ossize") / 2**20, num(b + ".osfiles"), mib(b + "-base.tar")))
    rows = [
        ("a", "seedbuild create, gzip, to oci-archive", "%s-a.tar" % b, True),
        ("b", "seedbuild create, zstd, to oci-archive", "%s-b.tar" % b, True),
        ("m", "seedbuild create --layout bootc-tarball", "%s-m.tar" % b, True),
        ("c", "upstream create replay (bootc seed)", "%s-c.tar" % b, False),
        ("k", "seedbuild create --layout classic", "%s-k.tar" % b, True),
        ("l", "upstream create replay (classic seed)", "%s-classic.tar" % b, False),
        ("d", "floor: tar | pigz of the captured files", "%s-d.tgz" % b, False),
        ("i", "seedbuild create --tag (containers-storage)", None, True),
        ("j", "podman-style pull of (a) from oci-archive (skopeo)", None, False),
        ("e", "seedbuild deploy --method ostree, native seed", None, True),
        ("f", "upstream classic deploy replay", None, False),
        ("h", "seedbuild deploy of the classic seed", None, True),
        ("g", "write floor: tar x of (a)'s layers", None, False),
    ]
    for k, what, f, sbl in rows:
        n = "%s-%s" % (b, k)
        if not os.path.exists("%s/%s.time" % (d, n)):
            continue  # a line not run on this base
        line = "  (%s) %-52s %7.2f s" % (k, what, t(n))
        if f:
            line += "  %8.1f MiB" % mib(f)
        if sbl:
            line += "  peak RSS %4.0f MiB" % rss(n)
        print(line)
    r = lambda x, y: t("%s-%s" % (b, x)) / t("%s-%s" % (b, y))
    if b.endswith("-policy"):
        print("  deploy: e/f = %.2f (target <= 0.5)  e/g = %.2f (write floor, target <= 1.5)" % (r("e", "f"), r("e", "g")))
        continue
    print("  create: a/c = %.2f (target <= 0.15)  b/c = %.2f  m/c = %.2f (bootc-tarball)  k/l = %.2f (classic, target <= 0.15)  a/d = %.2f  i/j = %.2f (--tag vs a pull, target <= 1)" % (r("a", "c"), r("b", "c"), r("m", "c"), r("k", "l"), r("a", "d"), r("i", "j")))
    print("  deploy: e/f = %.2f (target <= 0.5)  e/g = %.2f (write floor, target <= 1.5)  h/f = %.2f (tarball seed vs upstream, target <= 1)" % (r("e", "f"), r("e", "g"), r("h", "f")))
if os.path.exists(os.path.join(d, "pc-n.time")):
    import json
    unique = json.load(open(os.path.join(d, "images.json")))["unique_bytes"]
    served = lambda n: max(int(x) for x in open(os.path.join(d, n + ".served")).read().split())
    print()
    print("precache: %d images sharing two base layers, %.0f MiB of unique blobs, from a local registry" % (
        len(json.load(open(os.path.join(d, "images.json")))["images"]), unique / 2**20))
    print("  (n) seedbuild precache                                  %7.2f s  served %8.0f MiB  peak RSS %4.0f MiB" % (t("pc-n"), served("pc-n") / 2**20, rss("pc-n")))
    print("  (o) agent's method: podman pull, 10 at a time          %7.2f s  served %8.0f MiB" % (t("pc-o"), served("pc-o") / 2**20))
    print("  precache: n/o = %.2f (target <= 0.5)  served/unique = %.3f (target <= 1.01)  RSS %.0f MiB (target <= 512)" % (
        t("pc-n") / t("pc-o"), served("pc-n") / unique, rss("pc-n")))
if not sweep:
    sys.exit(0)
print()
print("growth (small base, one run each): scale, /var size, create, deploy, peak RSS of each")
for s in sweep:
    print("  %5s  %7.0f MiB  create %6.2f s (%4.0f MiB)  deploy %6.2f s (%4.0f MiB)" % (
        s, num("sweep-%s.varsize" % s) / 2**20, t("sweep-%s-a" % s), rss("sweep-%s-a" % s), t("sweep-%s-e" % s), rss("sweep-%s-e" % s)))
PY
