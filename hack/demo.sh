#!/usr/bin/env bash
# make demo: the main job on an embedded default. Makes a small sample host
# root and a stand-in bootc base image, replays the upstream agent's two seed
# formats, creates a native seed with seedbuild, inspects them all, and
# deploys the native seed into a throwaway ostree sysroot; then runs
# seedbuild's own image with podman to inspect the seed. Run as root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${SEEDBUILD:-$here/../bin/seedbuild}
demo=${DEMO_DIR:-/var/tmp/seedbuild-demo}
scale=${DEMO_SCALE:-0.05}

step() { printf '\n==> %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

"$here/rm-sysroot.sh" "$demo"
mkdir -p "$demo"
store=(--root "$demo/storage" --runroot "$demo/run" --storage-driver overlay)
export BUILDAH_ARGS="${store[*]}"

step "Making a sample host root (scale $scale) in $demo/root"
python3 "$here/mkroot.py" --out "$demo/root" --scale "$scale" --ostree >"$demo/root.json"
python3 - "$demo/root.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print("   %d files, %.1f MiB, kernel %s" % (s["files"], s["bytes"] / 2**20, s["kernel"]))
PY

step "Building a stand-in bootc base image"
"$here/mkbase.sh" "$demo/root" localhost/demo-base:latest "$demo/base.tar" >/dev/null
echo "   localhost/demo-base:latest, also $demo/base.tar"

step "Replaying the upstream agent's seed pipeline (classic and bootc-tarball)"
"$here/lca-reference.sh" classic "$demo/root" "$demo/upstream-classic.tar"
"$here/lca-reference.sh" bootc "$demo/root" "$demo/upstream-bootc.tar" "oci-archive:$demo/base.tar"

step "Inspecting the upstream seeds"
run "$bin" inspect "oci-archive:$demo/upstream-classic.tar"
echo
run "$bin" inspect "oci-archive:$demo/upstream-bootc.tar"

step "Creating a native seed with seedbuild"
cat >"$demo/cluster-info.json" <<'JSON'
{"seed_cluster_ocp_version":"4.20.0","base_domain":"example.com","cluster_name":"sno","node_ips":["192.0.2.10"],"release_registry":"quay.io","sno_hostname":"sno-seed","has_proxy":false,"has_fips":false}
JSON
run "$bin" "${store[@]}" create --rootfs "$demo/root" --base "oci-archive:$demo/base.tar" \
  --cluster-info "$demo/cluster-info.json" --tag localhost/demo-seed:latest --output "oci-archive:$demo/seed.tar" \
  --timestamp 1700000000

step "Inspecting it"
run "$bin" "${store[@]}" inspect localhost/demo-seed:latest

step "Writing and building a configured seed from it"
cat >"$demo/cluster-config.json" <<'JSON'
{"clusterName":"sno","baseDomain":"example.com","nodeIP":"192.0.2.20","hostname":"sno-target"}
JSON
run "$bin" "${store[@]}" containerfile --seed localhost/demo-seed:latest --cluster-config "$demo/cluster-config.json" -o "$demo/configured"
cat "$demo/configured/Containerfile"
run "$bin" "${store[@]}" build -t localhost/demo-configured-seed:latest "$demo/configured"
run "$bin" "${store[@]}" inspect localhost/demo-configured-seed:latest

step "Deploying the native seed into a throwaway ostree sysroot with the ostree executor"
mkdir -p "$demo/sysroot"
ostree admin init-fs --modern "$demo/sysroot" >/dev/null
run "$bin" "${store[@]}" deploy localhost/demo-seed:latest --stateroot demo --sysroot "$demo/sysroot" --method ostree
echo
run ostree admin status --sysroot "$demo/sysroot"

step "Running seedbuild's own image (make image) with podman: inspect of the demo seed"
# A podman store of the demo's own; no default ulimits, which some machines
# do not let a container raise.
printf '[containers]\ndefault_ulimits = []\n' >"$demo/containers.conf"
pm=(podman --root "$demo/podman" --runroot "$demo/podman-run")
id=$(CONTAINERS_CONF="$demo/containers.conf" "${pm[@]}" pull -q "oci-archive:$here/../bin/seedbuild-image.tar")
run env CONTAINERS_CONF="$demo/containers.conf" "${pm[@]}" run --rm -v "$demo:/demo:ro" "$id" inspect oci-archive:/demo/seed.tar

printf '\nDone. Everything is under %s (remove it with hack/rm-sysroot.sh %s).\n' "$demo" "$demo"
