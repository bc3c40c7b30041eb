#!/usr/bin/env bash
# lca-deploy-reference.sh SEED.oci-archive SYSROOT STATEROOT
#
# Baseline for seedbuild's deployer: how lifecycle-agent lays a classic seed
# (format 4, FROM scratch, made e.g. by lca-reference.sh classic) onto a host,
# rebuilt with stock tools against a test ostree sysroot.
#
# SYSROOT must exist and be set up with `ostree admin init-fs SYSROOT`.
# Steps: mount the seed image; unpack ostree.tgz into a scratch repo and
# pull-local its commit into SYSROOT's repo; create STATEROOT (os-init);
# deploy the commit with the kernel arguments of mco-currentconfig.json; then
# unpack var.tgz into the stateroot, etc.tgz into the new deployment, remove
# what etc.deletions lists, and drop containers.list and manifest.json into
# the stateroot's var/tmp.
#
# Environment: BUILDAH_ARGS="..." global buildah flags for every buildah call.
# Needs buildah, ostree, tar, python3; run as root.
set -euo pipefail

die() { echo "lca-deploy-reference: $*" >&2; exit 2; }
[[ $# -eq 3 ]] || die "usage: lca-deploy-reference.sh SEED.oci-archive SYSROOT STATEROOT"
seed=$(realpath -e "$1") || die "no such seed archive: $1"
sysroot=$(realpath -e "$2") || die "no such sysroot: $2"
stateroot=$3
[[ -d $sysroot/ostree/repo ]] || die "$sysroot is not an ostree sysroot (ostree admin init-fs)"

read -r -a gflags <<<"${BUILDAH_ARGS:-}"
bh() { buildah "${gflags[@]}" "$@"; }
keep_meta=(--selinux --acls --xattrs --xattrs-include='*')

scratch=$(mktemp -d "${TMPDIR:-/var/tmp}/lca-deploy-reference.XXXXXX")
ctr=
pulled=
finish() {
  if [[ -n $ctr ]]; then bh rm "$ctr" >/dev/null 2>&1 || true; fi
  # Drop the seed image again unless it was in the store before we came.
  if [[ -n $pulled ]]; then bh rmi "$pulled" >/dev/null 2>&1 || true; fi
  rm -rf "$scratch"
}
trap finish EXIT

had=$(bh images --quiet --no-trunc 2>/dev/null || true)
ctr=$(bh from --quiet --pull-always "oci-archive:$seed")
id=$(bh inspect --type container --format '{{.FromImageID}}' "$ctr")
grep -q "$id" <<<"$had" || pulled=$id
img=$(bh mount "$ctr")
for f in ostree.tgz var.tgz etc.tgz etc.deletions mco-currentconfig.json; do
  [[ -e $img/$f ]] || die "seed has no /$f (not a classic seed?)"
done

# OS content: seed repo -> sysroot repo.
mkdir "$scratch/repo"
tar -xzf "$img/ostree.tgz" -C "$scratch/repo" "${keep_meta[@]}"
ostree pull-local --repo="$sysroot/ostree/repo" "$scratch/repo" >/dev/null
ref=$(ostree refs --repo="$scratch/repo" | head -n 1)
[[ -n $ref ]] || die "seed ostree repo has no ref"
commit=$(ostree rev-parse --repo="$scratch/repo" "$ref")

# New stateroot and a deployment of the commit with the node's kernel args.
ostree admin os-init --sysroot="$sysroot" "$stateroot" >/dev/null
karg_flags=()
while IFS= read -r karg; do
  [[ -n $karg ]] && karg_flags+=("--karg-append=$karg")
done < <(python3 -c '
import json, sys
for k in json.load(open(sys.argv[1]))["spec"].get("kernelArguments") or []:
    print(k)' "$img/mco-currentconfig.json")
ostree admin deploy --sysroot="$sysroot" --os="$stateroot" --no-prune \
  "${karg_flags[@]}" "$commit" >/dev/null

srdir=$sysroot/ostree/deploy/$stateroot
deployment=
for d in "$srdir/deploy/$commit".*; do
  [[ -d $d && $d != *.origin ]] && { deployment=$d; break; }
done
[[ -n $deployment ]] || die "no deployment of $commit under $srdir/deploy"

# Node state: /var into the stateroot, /etc changes into the deployment.
tar -xzf "$img/var.tgz" -C "$srdir" "${keep_meta[@]}"
tar -xzf "$img/etc.tgz" -C "$deployment" "${keep_meta[@]}"
while IFS= read -r gone; do
  [[ -n $gone ]] && rm -rf -- "$deployment/${gone#/}"
done <"$img/etc.deletions"
if [[ -d $srdir/var/tmp ]]; then
  cp "$img/containers.list" "$img/manifest.json" "$srdir/var/tmp/" 2>/dev/null || true
fi

echo "deployed $commit into $deployment"
