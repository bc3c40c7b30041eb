#!/usr/bin/env python3
"""Generate a fake single-node OpenShift host root, for seedbuild's tests
and benchmarks.

    mkroot.py --out DIR [--scale F] [--seed N] [--ostree]

The tree has the shape of a booted ostree deployment as the seed builder sees
it:

  usr/        OS image content; usr/etc is the pristine /etc of the image and
              usr/lib/modules/<kver>/ holds the kernel and initramfs
  etc/        live /etc: usr/etc plus the node's edits, additions, deletions,
              the MachineConfig daemon's currentconfig, and files that a seed
              must not carry (hostname, NM connections, OVS db, ...)
  var/        what a seed keeps (etcd, kubelet, cni, /var/opt, many small
              files, files owned by core and nobody) and what it leaves out
              (container storage, pods, logs, tmp, ...)
  var/lib/awkward/
              entries that trip naive copiers: hard links, symlinks, setuid,
              sticky dir, user xattr, a sparse file, odd names, a FIFO
  ostree/repo (only with --ostree) a bare repo with usr/ committed on the
              branch rhcos/seed
  ostree/deploy/rhcos/deploy/<commit>.0 and its .origin (only with
              --ostree) the booted deployment of that commit, as on RHCOS:
              an empty folder, and an origin naming the MachineConfig's
              osImageURL

--scale multiplies the bulk of /var (1.0: roughly 370 MB and 24k entries in
the part a seed captures). Every mtime is 1700000000, and the same arguments
always give the same tree. Run as root: the script sets owners and makes a
FIFO. A JSON summary is printed on stdout.
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys

EPOCH = 1700000000
KERNEL = "5.14.0-570.el9_6.x86_64"
OCP_VERSION = "4.20.0"
OSIMAGE = "quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:" + "ab" * 32
KARGS = [
    "systemd.unified_cgroup_hierarchy=1",
    'cgroup_no_v1="all"',
    "psi=0",
    "rcupdate.rcu_normal_after_boot=0",
]

# Paths the seed must leave out, as lifecycle-agent lists them.
SKIP_VAR = [
    "var/tmp", "var/log", "var/lib/lca", "var/lib/log", "var/lib/cni/bin",
    "var/lib/containers", "var/lib/kubelet/pods", "var/lib/ovn-ic/etc",
]
SKIP_ETC = [
    "etc/NetworkManager/system-connections", "etc/machine-config-daemon/orig/var/lib/kubelet",
    "etc/openvswitch/conf.db", "etc/hostname",
]

# lifecycle-agent puts this placeholder pull secret in place before capture.
PLACEHOLDER_PULL_SECRET = (
    b'{"auths":{"registry.connect.redhat.com":{"username":"empty",'
    b'"password":"empty","auth":"ZW1wdHk6ZW1wdHk=","email":""}}}'
)

VOCAB = ("apiVersion kind metadata name namespace spec status container image "
         "registry quay openshift cluster node etcd kubelet crio network ovn "
         "certificate key secret config data label annotation true false").split()
SUFFIXES = ("json", "yaml", "log", "bin", "crt")


class Writer:
    """Creates entries under one root and keeps a tally of regular files."""

    def __init__(self, top, seed):
        self.top = top
        self.rng = random.Random(seed)
        self.nfiles = 0
        self.nbytes = 0
        # 65536 two-word phrases, so that text is drawn with one C-level map
        # per file instead of a Python loop per word.
        pick = self.rng.choice
        sep = lambda: "\n" if self.rng.random() < 0.1 else " "
        self.phrases = [(pick(VOCAB) + sep() + pick(VOCAB) + sep()).encode()
                        for _ in range(65536)]

    # -- content ---------------------------------------------------------
    def words(self, size):
        if size <= 0:
            return b""
        idx = memoryview(self.rng.randbytes(2 * (size // 8 + 2))).cast("H")
        out = b"".join(map(self.phrases.__getitem__, idx))
        while len(out) < size:  # only if the phrases were unusually short
            out += self.words(size - len(out))
        return out[:size]

    def payload(self, size, noise):
        """size bytes: a noise share of random bytes, the rest word text."""
        return b"".join(self.pieces(size, noise))

    def pieces(self, size, noise, piece=1 << 20):
        """Like payload, but yielded in pieces of at most 1 MiB, so big files
        are written without building them whole in memory."""
        k = int(size * noise)
        for make, total in ((self.rng.randbytes, k), (self.words, size - k)):
            while total > 0:
                n = min(piece, total)
                yield make(n)
                total -= n

    # -- entries ---------------------------------------------------------
    def abs(self, rel):
        p = os.path.join(self.top, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def file(self, rel, data, mode=0o644, owner=(0, 0)):
        """Write a regular file; data is bytes or an iterable of bytes."""
        p = self.abs(rel)
        size = 0
        with open(p, "wb") as fh:
            for chunk in ([data] if isinstance(data, bytes) else data):
                fh.write(chunk)
                size += len(chunk)
        # chown before chmod: chown drops the setuid/setgid bits.
        os.lchown(p, *owner)
        os.chmod(p, mode)
        self.nfiles += 1
        self.nbytes += size
        return p

    def bulk(self, base, count, smin, smax, noise=0.3, levels=3, width=8):
        """count files of smin..smax bytes spread over a random dir tree."""
        r = self.rng
        for i in range(count):
            subdirs = ["s%x" % r.randrange(width) for _ in range(r.randint(1, levels))]
            name = "item%05d.%s" % (i, SUFFIXES[r.randrange(len(SUFFIXES))])
            rel = "/".join([base] + subdirs + [name])
            self.file(rel, self.pieces(r.randint(smin, smax), noise))


def make_usr(w):
    """The OS image: what a bootc base image already ships."""
    w.file("usr/lib/os-release",
           b'NAME="Red Hat Enterprise Linux CoreOS"\nID="rhcos"\n'
           b'VERSION_ID="4.20"\nOSTREE_VERSION="420.0.0"\n')
    w.file("usr/lib/modules/%s/vmlinuz" % KERNEL, w.pieces(4 << 20, 0.9))
    w.file("usr/lib/modules/%s/initramfs.img" % KERNEL, w.pieces(2 << 20, 0.9))
    w.file("usr/bin/hello", b"#!/bin/sh\necho hello\n", 0o755)
    w.bulk("usr/share/doc", 200, 200, 4000)
    # usr/etc: the image's default /etc.
    w.bulk("usr/etc/pki/tls", 40, 500, 3000)
    w.bulk("usr/etc/systemd/system", 60, 100, 800)
    w.bulk("usr/etc/crio", 20, 200, 2000)
    w.file("usr/etc/os-release-link-target", b"see usr/lib/os-release\n")
    w.file("usr/etc/chrony.conf", b"pool 2.rhel.pool.ntp.org iburst\n")
    w.file("usr/etc/to-be-deleted.conf", b"a default the node removed\n")
    w.file("usr/etc/sysconfig/also-deleted", b"x=1\n")


def make_etc(w):
    """Live /etc = usr/etc + what the cluster changed on the node."""
    shutil.copytree(os.path.join(w.top, "usr/etc"), os.path.join(w.top, "etc"), symlinks=True)
    for gone in ("etc/to-be-deleted.conf", "etc/sysconfig/also-deleted"):
        os.unlink(os.path.join(w.top, gone))
    w.file("etc/chrony.conf", b"server 10.0.0.1 iburst\n")
    w.bulk("etc/kubernetes/static-pod-resources", 120, 500, 6000)
    w.file("etc/kubernetes/kubelet.conf", w.words(2000))
    w.file("etc/kubernetes/static-pod-resources/secret.key", w.payload(1675, 1.0), 0o600)
    mcd = {"metadata": {"name": "rendered-master-0123456789abcdef",
                        "annotations": {"machineconfiguration.openshift.io/release-image-version": OCP_VERSION}},
           "spec": {"osImageURL": OSIMAGE, "kernelArguments": KARGS}}
    w.file("etc/machine-config-daemon/currentconfig", json.dumps(mcd).encode())
    # Node identity and secrets: never in a seed.
    w.file("etc/hostname", b"sno-seed.example.com\n")
    w.file("etc/NetworkManager/system-connections/enp1s0.nmconnection",
           b"[connection]\nid=enp1s0\n", 0o600)
    w.file("etc/openvswitch/conf.db", w.payload(20000, 0.5))
    w.file("etc/machine-config-daemon/orig/var/lib/kubelet/config.json", b"{}")


def make_var(w, scale):
    sc = lambda n: max(1, int(n * scale))
    core, nobody = (1000, 1000), (65534, 65534)
    # --- captured ---
    etcd = "var/lib/etcd/member"
    for i in range(sc(3)):
        w.file("%s/snap/%016x.snap" % (etcd, i), w.pieces(16 << 20, 0.6), 0o600)
    w.file(etcd + "/snap/db", w.pieces(sc(96) << 20, 0.5), 0o600)
    for i in range(sc(4)):
        w.file("%s/wal/%016x-%016x.wal" % (etcd, i, 7 * i), w.pieces(8 << 20, 0.7), 0o600)
    w.bulk("var/lib/kubelet/device-plugins", sc(50), 100, 2000)
    w.file("var/lib/kubelet/config.json", PLACEHOLDER_PULL_SECRET, 0o600)
    w.bulk("var/lib/cni/networks", sc(200), 50, 300, noise=0.0)
    w.bulk("var/opt/openshift", sc(500), 1000, 20000)
    w.bulk("var/lib/misc", sc(20000), 256, 8192, levels=4, width=16)
    w.bulk("var/usrlocal/bin", 5, 1 << 20, 2 << 20, noise=0.95)
    w.file("var/home/core/.ssh/authorized_keys", b"ssh-ed25519 AAAAC3Nza test\n", 0o600, core)
    w.file("var/home/core/notes.txt", b"owned by core\n", 0o644, core)
    w.file("var/lib/nobody.dat", b"owned by nobody\n", 0o640, nobody)
    # --- left out ---
    w.file("var/home/core/.bash_history", b"sudo -i\ncat /etc/shadow\n", 0o600, core)
    w.bulk("var/lib/containers/storage/overlay", sc(300), 20000, 200000, noise=0.8)
    w.bulk("var/lib/kubelet/pods", sc(300), 1000, 20000)
    w.bulk("var/log/journal", sc(20), 1 << 20, 2 << 20, noise=0.5)
    w.bulk("var/tmp/backup", sc(10), 1 << 20, 2 << 20, noise=0.9)
    w.bulk("var/lib/cni/bin", 5, 1 << 20, 2 << 20, noise=0.95)
    w.bulk("var/lib/ovn-ic/etc/ovnkube-node-certs", 5, 1000, 3000)
    w.bulk("var/lib/lca/workspace", 3, 1000, 3000)


def make_awkward(w):
    base = "var/lib/awkward/"
    at = lambda rel: w.abs(base + rel)
    first = w.file(base + "hardlink-a", w.payload(100000, 0.5))
    os.link(first, at("sub/hardlink-b"))
    os.symlink("hardlink-a", at("rel-symlink"))
    os.symlink("/etc/chrony.conf", at("abs-symlink"))
    os.symlink("does/not/exist", at("dangling-symlink"))
    w.file(base + "setuid-bin", b"#!/bin/sh\n", 0o4755)
    w.file(base + "sticky-dir/x", b"x")
    os.chmod(os.path.dirname(at("sticky-dir/x")), 0o1777)
    carrier = w.file(base + "with-xattr", b"xattr carrier\n")
    try:
        os.setxattr(carrier, "user.seed.test", b"kept")
    except OSError as e:  # e.g. a file system without user xattrs
        print("mkroot: no user xattr: %s" % e, file=sys.stderr)
    with open(at("sparse.img"), "wb") as fh:  # 64 MiB, 6 bytes of data at 32 MiB
        fh.truncate(64 << 20)
        fh.seek(32 << 20)
        fh.write(b"middle")
    w.file(base + "name with spaces.txt", b"spaces\n")
    w.file(base + "unicod\u00e9-\u65e5\u672c.txt", b"unicode\n")
    deep = "/".join("long-directory-name-%02d" % i for i in range(8))
    w.file(base + deep + "/deep.txt", b"deep\n")
    w.file(base + "empty-file", b"")
    os.makedirs(at("empty-dir"), exist_ok=True)
    os.mkfifo(at("a-fifo"))


HERE = os.path.dirname(os.path.abspath(__file__))


def make_policy(w):
    """An SELinux policy in usr/etc/selinux (hack/mkpolicy.py), and a
    semodule that has nothing to refresh: ostree runs `semodule --help` in
    a deployment that carries a policy when it deploys over a previous
    one (ostree-sysroot-deploy.c, sysroot_finalize_selinux_policy), and
    skips the refresh when the help lacks --rebuild-if-modules-changed.
    It runs under busybox, copied in static."""
    subprocess.run([sys.executable, os.path.join(HERE, "mkpolicy.py"), w.abs("usr/etc/selinux")], check=True)
    w.file("usr/bin/busybox", open("/bin/busybox", "rb").read(), mode=0o755)
    w.file("usr/sbin/semodule", b"#!/usr/bin/busybox sh\n"
           b"echo 'usage: semodule [option]... (a stand-in in a synthetic base: it refreshes nothing)'\n", mode=0o755)


def make_ostree(top, labelled):
    """Commit usr/ into a bare ostree repo at ostree/repo; return the commit.
    With labelled, every file is labelled by the policy in usr/etc/selinux,
    as rpm-ostree labels an RHCOS commit."""
    repo = os.path.join(top, "ostree/repo")
    os.makedirs(repo)
    subprocess.run(["ostree", "init", "--repo=" + repo, "--mode=bare"], check=True)
    stage = os.path.join(top, ".mkroot-commit")
    # Hard-linked view of usr/ under a scratch dir, so the commit holds /usr.
    shutil.copytree(os.path.join(top, "usr"), os.path.join(stage, "usr"),
                    symlinks=True, copy_function=os.link)
    try:
        policy = ["--selinux-policy=" + stage] if labelled else []
        res = subprocess.run(["ostree", "commit", "--repo=" + repo, "--branch=rhcos/seed",
                              "--tree=dir=" + stage, "--timestamp=@%d" % EPOCH] + policy,
                             check=True, stdout=subprocess.PIPE, text=True)
    finally:
        shutil.rmtree(stage)
    commit = res.stdout.strip()
    deploy = os.path.join(top, "ostree/deploy/rhcos/deploy")
    os.makedirs(os.path.join(deploy, commit + ".0"))
    with open(os.path.join(deploy, commit + ".0.origin"), "w") as fh:
        fh.write("[origin]\ncontainer-image-reference=ostree-unverified-registry:%s\n" % OSIMAGE)
    return commit


def pin_mtimes(top):
    for d, subdirs, names in os.walk(top, topdown=False):
        for n in names + subdirs:
            os.utime(os.path.join(d, n), (EPOCH, EPOCH), follow_symlinks=False)
    os.utime(top, (EPOCH, EPOCH))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder to create (must be absent or empty)")
    p.add_argument("--scale", type=float, default=1.0, help="size factor for /var (default 1)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--ostree", action="store_true", help="also commit usr/ to ostree/repo")
    p.add_argument("--os-bulk-mb", type=int, default=0,
                   help="grow the OS (usr/lib/os-bulk) by this many MiB, in files of ~36 KiB "
                        "(1536 gives an RHCOS-sized base: 1.5 GiB more, 43k files); default 0")
    p.add_argument("--selinux-policy", action="store_true",
                   help="give the OS an SELinux policy (hack/mkpolicy.py) in usr/etc/selinux; its files "
                        "carry no labels, but the --ostree commit is labelled by it")
    args = p.parse_args()

    top = os.path.abspath(args.out)
    if os.path.isdir(top) and os.listdir(top):
        sys.exit("mkroot: %s is not empty" % top)
    os.makedirs(top, exist_ok=True)
    os.umask(0o022)

    w = Writer(top, args.seed)
    make_usr(w)
    if args.os_bulk_mb > 0:
        count = args.os_bulk_mb * 28
        avg = (args.os_bulk_mb << 20) // count
        w.bulk("usr/lib/os-bulk", count, avg // 4, avg * 7 // 4, noise=0.45, levels=3, width=16)
    if args.selinux_policy:
        make_policy(w)
    make_etc(w)
    make_var(w, args.scale)
    make_awkward(w)
    for d in ("boot", "dev", "proc", "run", "sys", "sysroot", "tmp"):
        os.makedirs(os.path.join(top, d), exist_ok=True)
    commit = make_ostree(top, args.selinux_policy) if args.ostree else None
    pin_mtimes(top)

    json.dump({"root": top, "files": w.nfiles, "bytes": w.nbytes, "kernel": KERNEL,
               "ostree_commit": commit, "var_excluded": SKIP_VAR, "etc_excluded": SKIP_ETC},
              sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
