#!/usr/bin/env bash
# lca-reference.sh classic ROOT OUT.tar
# lca-reference.sh bootc   ROOT OUT.tar BASEREF
#
# Baseline for seedbuild: the seed image that lifecycle-agent's seed creator
# makes today, rebuilt with stock tools from a host root folder (mkroot.py
# output) and written to OUT.tar as an oci-archive.
#
# The seed folder holds, like upstream:
#   var.tgz               /var without the agent's exclusions
#   etc.tgz               /etc entries that differ from usr/etc (config-diff)
#   etc.deletions         /etc entries the node removed, one absolute path a line
#   ostree.tgz            ROOT/ostree/repo (classic only, when the repo exists)
#   mco-currentconfig.json, rpm-ostree.json, manifest.json, containers.list
#   ostree-<checksum>.<serial>.origin  the booted deployment's .origin
# As the agent's seed creator (lca-cli/seedcreator) writes them:
#   rpm-ostree.json is ROOT/rpm-ostree.json, else made from the root's only
#     deployment ROOT/ostree/deploy/<osname>/deploy/<checksum>.<serial>, as
#     `rpm-ostree status -v --json` names it (id <osname>-<checksum>.<serial>);
#   the origin is that deployment's .origin, copied (backupOstreeOrigin);
#   etc.deletions lists what `ostree admin config-diff` calls D: a removed
#     folder, not its entries; etc.tgz is `tar czf --exclude ... -T -` of
#     the rest, which recurses, so an excluded folder's entries stay out
#     (here: every entry given, none twice, less those).
# A root without a deployment fails, as the agent's cp of the origin does.
# classic: FROM scratch with the folder at /        (seed format 4)
# bootc:   FROM BASEREF with the folder at /usr/lib/openshift/seed
# BASEREF is anything `buildah bud` accepts in FROM (localhost/x:tag,
# oci-archive:/path.tar).
#
# Environment: BUILDAH_ARGS="..." global buildah flags for every buildah call
# (e.g. "--root /x/root --runroot /x/run --storage-driver vfs").
# Needs tar, gzip, python3 and Debian's buildah; run as root.
set -euo pipefail

die() { echo "lca-reference: $*" >&2; exit 2; }
[[ $# -ge 3 ]] || die "usage: lca-reference.sh classic|bootc ROOT OUT.tar [BASEREF]"
kind=$1
src=$(realpath -e "$2") || die "no such root: $2"
dest=$3
baseref=${4:-}
case $kind in
  classic) ;;
  bootc) [[ -n $baseref ]] || die "bootc needs BASEREF" ;;
  *) die "first argument must be classic or bootc, not $kind" ;;
esac

read -r -a gflags <<<"${BUILDAH_ARGS:-}"
bh() { buildah "${gflags[@]}" "$@"; }

scratch=$(mktemp -d "${TMPDIR:-/var/tmp}/lca-reference.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
seed=$scratch/seed
mkdir "$seed"

# Keep SELinux labels, all xattrs and ACLs, as the agent does.
keep_meta=(--selinux --acls --xattrs --xattrs-include='*')

# ---- var.tgz: lifecycle-agent's /var exclusions -------------------------
var_skip=(
  '*/.bash_history'
  'var/tmp/*'
  'var/log/*'
  'var/lib/lca'
  'var/lib/log/*'
  'var/lib/cni/bin/*'
  'var/lib/containers/*'
  'var/lib/kubelet/pods/*'
  'var/lib/ovn-ic/etc/*'
)
var_args=()
for pat in "${var_skip[@]}"; do var_args+=("--exclude=$pat"); done
tar -czf "$seed/var.tgz" -C "$src" "${var_args[@]}" "${keep_meta[@]}" var

# ---- etc.tgz + etc.deletions: /etc against usr/etc ----------------------
# Like `ostree admin config-diff`: an entry is changed when it is new, or its
# type/mode/owner differ, or (files) its bytes or (links) its target differ.
# Writes a NUL-separated member list for tar and the deletions file.
python3 - "$src" "$scratch/etc.members" "$seed/etc.deletions" <<'PY'
import filecmp, os, stat, sys

top, members_out, deletions_out = sys.argv[1:4]
EXCLUDED = ("NetworkManager/system-connections", "machine-config-daemon/orig/var/lib/kubelet",
            "openvswitch/conf.db", "openvswitch/.conf.db.~lock~", "hostname")

def entries(base):
    found = {}
    pending = [""]
    while pending:
        rel = pending.pop()
        with os.scandir(os.path.join(base, rel)) as it:
            for e in it:
                r = os.path.join(rel, e.name)
                found[r] = e.path
                if e.is_dir(follow_symlinks=False):
                    pending.append(r)
    return found

live = entries(os.path.join(top, "etc"))
pristine = entries(os.path.join(top, "usr/etc"))

def differs(a, b):
    sa, sb = os.lstat(a), os.lstat(b)
    if (sa.st_mode, sa.st_uid, sa.st_gid) != (sb.st_mode, sb.st_uid, sb.st_gid):
        return True
    if stat.S_ISLNK(sa.st_mode):
        return os.readlink(a) != os.readlink(b)
    if stat.S_ISREG(sa.st_mode):
        return not filecmp.cmp(a, b, shallow=False)
    return False

changed = [r for r in sorted(live) if r not in pristine or differs(live[r], pristine[r])]
with open(members_out, "wb") as f:
    for r in changed:
        if "cni/multus" in r:  # the agent regenerates multus config
            continue
        # The agent's tar recurses, and its --exclude of a folder drops
        # the folder's entries too; this tar is given every entry (no
        # recursion, so none is stored twice), less those.
        if any(r.startswith(x + "/") for x in EXCLUDED):
            continue
        f.write(b"etc/" + os.fsencode(r) + b"\0")
# ostree's diff names a removed folder, not its entries.
gone = set(pristine) - set(live)
with open(deletions_out, "wb") as f:
    for r in sorted(gone):
        if os.path.dirname(r) not in gone:
            f.write(b"/etc/" + os.fsencode(r) + b"\n")
PY
etc_skip=(
  etc/NetworkManager/system-connections
  etc/machine-config-daemon/orig/var/lib/kubelet
  etc/openvswitch/conf.db
  etc/openvswitch/.conf.db.~lock~
  etc/hostname
)
etc_args=()
for pat in "${etc_skip[@]}"; do etc_args+=("--exclude=$pat"); done
tar -czf "$seed/etc.tgz" -C "$src" --no-recursion "${etc_args[@]}" "${keep_meta[@]}" \
  --null -T "$scratch/etc.members"

# ---- ostree.tgz (classic) -----------------------------------------------
if [[ $kind == classic && -d $src/ostree/repo ]]; then
  tar -czf "$seed/ostree.tgz" -C "$src/ostree/repo" "${keep_meta[@]}" .
fi

# ---- metadata files -----------------------------------------------------
cluster_info='{"seed_cluster_ocp_version":"4.20.0","base_domain":"example.com","cluster_name":"sno","node_ips":["192.0.2.10"],"release_registry":"quay.io","sno_hostname":"sno-seed","has_proxy":false,"has_fips":false}'
cp "$src/etc/machine-config-daemon/currentconfig" "$seed/mco-currentconfig.json"
origins=("$src"/ostree/deploy/*/deploy/*.origin)
[[ ${#origins[@]} -eq 1 && -f ${origins[0]} ]] ||
  die "the root has ${#origins[@]} deployment origin(s) under ostree/deploy, want one (the booted deployment)"
dep=$(basename "${origins[0]}" .origin)
osname=$(basename "$(dirname "$(dirname "${origins[0]}")")")
if [[ -f $src/rpm-ostree.json ]]; then
  cp "$src/rpm-ostree.json" "$seed/rpm-ostree.json"
else
  printf '{"deployments":[{"id":"%s-%s","osname":"%s","checksum":"%s","serial":%s,"booted":true}]}\n' \
    "$osname" "$dep" "$osname" "${dep%%.*}" "${dep#*.}" >"$seed/rpm-ostree.json"
fi
cp "${origins[0]}" "$seed/ostree-$dep.origin"
printf '%s\n' "$cluster_info" >"$seed/manifest.json"
printf '%s\n' "quay.io/openshift-release-dev/ocp-release:4.20.0-x86_64" >"$seed/containers.list"

# ---- image --------------------------------------------------------------
build=(--label com.openshift.lifecycle-agent.seed_format_version=4
       --label "com.openshift.lifecycle-agent.seed_cluster_info=$cluster_info")
if [[ $kind == classic ]]; then
  cat >"$scratch/Containerfile" <<'EOF'
FROM scratch
COPY . /
EOF
else
  cat >"$scratch/Containerfile" <<'EOF'
ARG SEED_STAGE_BASE_IMAGE
FROM ${SEED_STAGE_BASE_IMAGE}
COPY . /usr/lib/openshift/seed
EOF
  build+=(--label com.openshift.lifecycle-agent.bootc_seed=true
          --build-arg "SEED_STAGE_BASE_IMAGE=$baseref")
fi
tag=localhost/lca-reference-seed:$kind-$$
bh bud --quiet --isolation chroot \
  --ulimit "nofile=$(ulimit -Sn):$(ulimit -Hn)" --ulimit "nproc=$(ulimit -Su):$(ulimit -Hu)" \
  --file "$scratch/Containerfile" --tag "$tag" "${build[@]}" "$seed" >/dev/null
rm -f "$dest"
bh push --quiet "$tag" "oci-archive:$dest" >/dev/null
bh rmi --force "$tag" >/dev/null
echo "lca-reference: $(stat -c %s "$dest") bytes"
