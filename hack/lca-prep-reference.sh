#!/usr/bin/env bash
# lca-prep-reference.sh SEED.oci-archive SYSROOT VERSION
#
# An oracle for seedbuild's tarball seeds: the upstream lifecycle agent's
# prep of a seed (internal/prep SetupStateroot, ibi=false), replayed with
# stock tools against a test ostree sysroot, and failing where the agent
# fails. Facts from the agent's source, step by step:
#  1. mount the seed; untar ostree.tgz (SELinux labels, xattrs) into a fresh
#     folder: that folder is the repo;
#  2. rpm-ostree.json: the deployment with "booted": true; its id must hold a
#     '-'; what follows the last '-' is <checksum>.<serial>, and the commit
#     is what precedes its first '.';
#  3. manifest.json: seed_cluster_ocp_version must equal VERSION;
#  4. `ostree pull-local REPO` (every ref, none named); `ostree admin os-init
#     rhcos_<VERSION, '-' as '_'>`;
#  5. kargs: each MachineConfig kernelArguments item as --karg-append with
#     its JSON-quoted value (fips adds fips=1 and boot=LABEL=boot), then
#     --karg ibu=VERSION; `ostree admin deploy --os NAME --no-prune KARGS
#     COMMIT`, with --not-as-default where `ostree admin --help` lists
#     set-default; run through bash -c;
#  6. the new deployment is the first of the stateroot in `ostree admin
#     status`; ostree-<checksum>.<serial>.origin is copied over its .origin
#     ("failed to restore origin file" when missing);
#  7. var.tgz untarred into the stateroot, etc.tgz into the deployment;
#  8. etc.deletions: each line, trimmed of spaces, removed with a plain
#     remove (a file, a link or an empty folder): a missing path, an empty
#     line (the deployment itself) or a folder with entries fails;
#  9. containers.list and manifest.json copied to the workspace (the
#     agent's var/tmp); a missing one fails.
# Not replayed: the agent's `rpm-ostree cleanup -b` after the deploy (no
# rpm-ostree here), its remount of /sysroot, and the chroot paths.
#
# With LCA_PREP_BOOTC=1 the seed is a bootc-tarball one (the agent's files
# under /usr/lib/openshift/seed, no ostree.tgz): steps 1, 2 and 4 become a
# commit of the image's own root (its /etc as /usr/etc), standing in for
# `bootc install to-existing-root`; every other step is the same.
#
# Environment: BUILDAH_ARGS="..." global buildah flags for every buildah
# call; LCA_PREP_WORKSPACE, where step 9 copies (default SYSROOT/var/tmp).
# Prints "prepared DEPLOYMENT" on success. Needs buildah, ostree, tar,
# python3; run as root.
set -euo pipefail

fail() { echo "lca-prep-reference: $*" >&2; exit 1; }
[[ $# -eq 3 ]] || { echo "usage: lca-prep-reference.sh SEED.oci-archive SYSROOT VERSION" >&2; exit 2; }
seed=$(realpath -e "$1") || fail "no such seed archive: $1"
sysroot=$(realpath -e "$2") || fail "no such sysroot: $2"
version=$3
[[ -d $sysroot/ostree/repo ]] || fail "$sysroot is not an ostree sysroot (ostree admin init-fs)"
workspace=${LCA_PREP_WORKSPACE:-$sysroot/var/tmp}

read -r -a gflags <<<"${BUILDAH_ARGS:-}"
bh() { buildah "${gflags[@]}" "$@"; }
keep_meta=(--selinux --acls --xattrs --xattrs-include='*')

scratch=$(mktemp -d "${TMPDIR:-/var/tmp}/lca-prep-reference.XXXXXX")
ctr=
pulled=
finish() {
  if [[ -n $ctr ]]; then bh rm "$ctr" >/dev/null 2>&1 || true; fi
  if [[ -n $pulled ]]; then bh rmi "$pulled" >/dev/null 2>&1 || true; fi
  chattr -R -i "$scratch" 2>/dev/null || true
  rm -rf "$scratch"
}
trap finish EXIT

had=$(bh images --quiet --no-trunc 2>/dev/null || true)
ctr=$(bh from --quiet --pull-always "oci-archive:$seed")
id=$(bh inspect --type container --format '{{.FromImageID}}' "$ctr")
grep -q "$id" <<<"$had" || pulled=$id
img=$(bh mount "$ctr")
files=$img
[[ ${LCA_PREP_BOOTC:-} == 1 ]] && files=$img/usr/lib/openshift/seed

# 2. The booted deployment of the seed node.
booted_py=$(cat <<'PY'
import json, sys
try:
    doc = json.load(open(sys.argv[1]))
except Exception as e:
    sys.exit("failed reading %s: %s" % (sys.argv[1], e))
for d in doc.get("deployments") or []:
    if d.get("booted"):
        parts = d.get("id", "").split("-")
        if len(parts) < 2:
            sys.exit("there should be a '-' in deploymentID %s" % d.get("id"))
        print(parts[-1], parts[-1].split(".")[0])
        sys.exit(0)
sys.exit("failed finding booted stateroot")
PY
)
ids=$(python3 -c "$booted_py" "$files/rpm-ostree.json") || fail "failed to get booted stateroot id"
read -r seed_dep seed_commit <<<"$ids"

# 3. The version.
got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("seed_cluster_ocp_version",""))' "$files/manifest.json") ||
  fail "failed to read and decode ClusterInfo file"
[[ $got == "$version" ]] || fail "version specified in seed image ($got) differs from version in spec ($version)"
osname=rhcos_${version//-/_}

# 1 and 4. The OS content.
commit=$seed_commit
if [[ ${LCA_PREP_BOOTC:-} == 1 ]]; then
  tree=$scratch/tree
  mkdir -p "$tree/usr"
  (cd "$img" && tar cf - --exclude=./var --exclude=./usr/etc "${keep_meta[@]}" .) | tar xf - -C "$tree" "${keep_meta[@]}"
  rm -rf "$tree/etc" && cp -a "$img/etc" "$tree/usr/etc"
  mkdir -p "$tree/var"
  commit=$(ostree commit --repo="$sysroot/ostree/repo" --branch="lca-prep-reference/$osname" --tree=dir="$tree")
else
  mkdir "$scratch/ostree"
  tar -xzf "$files/ostree.tgz" -C "$scratch/ostree" "${keep_meta[@]}" || fail "failed to extract ostree.tgz"
  ostree pull-local --repo="$sysroot/ostree/repo" "$scratch/ostree" >/dev/null || fail "failed ostree pull-local"
fi
ostree admin os-init --sysroot="$sysroot" "$osname" >/dev/null || fail "failed ostree admin os-init"

# 5. The deploy, with the kargs quoted as the agent quotes them.
kargs_py=$(cat <<'PY'
import json, sys
mc = json.load(open(sys.argv[1]))
spec = mc.get("spec") or {}
out = []
for k in spec.get("kernelArguments") or []:
    out += ["--karg-append", json.dumps(k)]
if spec.get("fips"):
    out += ["--karg-append", "fips=1", "--karg-append", "boot=LABEL=boot"]
out += ["--karg", "ibu=" + sys.argv[2]]
print(" ".join(out))
PY
)
kargs=$(python3 -c "$kargs_py" "$files/mco-currentconfig.json" "$version") || fail "failed to build kargs"
not_default=
ostree admin --help 2>&1 | grep -q set-default && not_default=--not-as-default
bash -c "ostree admin deploy --sysroot=$sysroot --os $osname --no-prune $kargs $commit $not_default" >/dev/null ||
  fail "failed ostree admin deploy"

# 6. The origin.
dep=$(ostree admin status --sysroot="$sysroot" | awk -v os="$osname" '{ if ($1 == "*") $1 = ""; $0 = $0; if ($1 == os) { print $2; exit } }')
[[ -n $dep ]] || fail "unable to get deployment of $osname"
srdir=$sysroot/ostree/deploy/$osname
deployment=$srdir/deploy/$dep
cp "$files/ostree-$seed_dep.origin" "$deployment.origin" 2>/dev/null || fail "failed to restore origin file: no ostree-$seed_dep.origin in the seed"

# 7. The node's state.
tar -xzf "$files/var.tgz" -C "$srdir" "${keep_meta[@]}" || fail "failed to restore var directory"
tar -xzf "$files/etc.tgz" -C "$deployment" "${keep_meta[@]}" || fail "failed to extract seed etc"

# 8. The deletions, each with a plain remove.
python3 - "$files/etc.deletions" "$deployment" <<'PY' || fail "failed to process etc.deletions"
import os, sys
with open(sys.argv[1]) as f:
    for line in f.read().splitlines():
        p = os.path.join(sys.argv[2], line.strip(" ").lstrip("/")) if line.strip(" ") else sys.argv[2]
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                os.rmdir(p)
            else:
                os.remove(p)
        except OSError as e:
            sys.exit("failed to remove %s: %s" % (p, e))
PY

# 9. The seed's files for the agent's later steps.
mkdir -p "$workspace"
cp "$files/containers.list" "$workspace/" 2>/dev/null || fail "failed to copy image list file"
cp "$files/manifest.json" "$workspace/" 2>/dev/null || fail "failed to copy manifest.json file"
echo "prepared $deployment"
