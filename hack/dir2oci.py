#!/usr/bin/env python3
"""Write a folder as a one-layer OCI image archive (oci-archive).

    dir2oci.py --tree DIR --out IMAGE.oci-archive [--compression gzip|zstd] [--no-xattrs] [--label K=V ...]

The layer is GNU tar of DIR (numeric owners, xattrs unless --no-xattrs,
hard links, sorted names), gzipped (or zstd-compressed); the config carries the labels; the archive is an OCI image
layout in a tar, as `oci-archive:` expects. Run as root so owners are read
as they are. Used by the VM test harness to turn the node OS into a bootc
image without a container engine.
"""
import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile


# The compressors: argv and layer media type.
COMPRESSORS = {
    "gzip": (["gzip", "-n", "-1"], "application/vnd.oci.image.layer.v1.tar+gzip"),
    "zstd": (["zstd", "-q", "-3"], "application/vnd.oci.image.layer.v1.tar+zstd"),
}


def layer(tree, blobs, compressor, xattrs=True):
    """Tar and compress tree into blobs; return (compressed digest, size, diff id)."""
    tmp = tempfile.NamedTemporaryFile(dir=blobs, delete=False)
    keep = ["--xattrs", "--xattrs-include=*"] if xattrs else ["--no-xattrs"]
    tar = subprocess.Popen(
        ["tar", "--sort=name", "--numeric-owner"] + keep +
        ["--format=pax", "--pax-option=delete=atime,delete=ctime",
         "-C", tree, "-cf", "-", "."], stdout=subprocess.PIPE)
    gz = subprocess.Popen(compressor, stdin=subprocess.PIPE, stdout=tmp)
    diff = hashlib.sha256()
    while True:
        chunk = tar.stdout.read(1 << 20)
        if not chunk:
            break
        diff.update(chunk)
        gz.stdin.write(chunk)
    gz.stdin.close()
    if tar.wait() != 0 or gz.wait() != 0:
        sys.exit("dir2oci: tar or %s of %s failed" % (compressor[0], tree))
    tmp.close()
    comp = hashlib.sha256()
    with open(tmp.name, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            comp.update(chunk)
    size = os.path.getsize(tmp.name)
    os.rename(tmp.name, os.path.join(blobs, comp.hexdigest()))
    return "sha256:" + comp.hexdigest(), size, "sha256:" + diff.hexdigest()


def put(blobs, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--label", action="append", default=[], help="K=V, repeatable")
    p.add_argument("--compression", choices=sorted(COMPRESSORS), default="gzip")
    p.add_argument("--no-xattrs", action="store_true",
                   help="leave every xattr (SELinux labels too) out of the layer")
    args = p.parse_args()
    labels = {}
    for kv in args.label:
        k, sep, v = kv.partition("=")
        if not sep or not k:
            sys.exit("dir2oci: --label %r is not K=V" % kv)
        labels[k] = v
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.out))) as lay:
        blobs = os.path.join(lay, "blobs/sha256")
        os.makedirs(blobs)
        compressor, media_type = COMPRESSORS[args.compression]
        ldigest, lsize, diff = layer(args.tree, blobs, compressor, not args.no_xattrs)
        config = {
            "created": "2023-11-14T22:13:20Z",
            "architecture": "amd64", "os": "linux",
            "config": {"Labels": labels, "Cmd": ["/sbin/init"]},
            "rootfs": {"type": "layers", "diff_ids": [diff]},
            "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "dir2oci.py"}],
        }
        cdigest, csize = put(blobs, json.dumps(config, sort_keys=True).encode())
        manifest = {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
            "layers": [{"mediaType": media_type, "digest": ldigest, "size": lsize}],
            "annotations": {"org.opencontainers.image.version": labels.get("org.opencontainers.image.version", "")},
        }
        mdigest, msize = put(blobs, json.dumps(manifest, sort_keys=True).encode())
        index = {"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": msize}]}
        with open(os.path.join(lay, "index.json"), "w") as f:
            json.dump(index, f)
        with open(os.path.join(lay, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        tmp_out = args.out + ".tmp"
        with tarfile.open(tmp_out, "w") as t:
            for name in ("oci-layout", "index.json", "blobs"):
                t.add(os.path.join(lay, name), arcname=name)
        os.rename(tmp_out, args.out)
    print(json.dumps({"archive": args.out, "layer": ldigest, "layer_size": lsize, "manifest": mdigest}))


if __name__ == "__main__":
    main()
