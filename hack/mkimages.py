#!/usr/bin/env python3
"""Write N images that share layers, as release images do, into one OCI
layout, for seedbuild's precache bench.

    mkimages.py --out DIR [--count 40] [--base-mb 600] [--own-mb 20]

Every image has two base layers of --base-mb MiB each, shared by all, and a
layer of its own of --own-mb MiB; the layers are uncompressed tars of
noise (so the bytes a registry serves are the blobs' sizes), the same for
the same arguments. The layout's index names each image
app-NN (org.opencontainers.image.ref.name). A JSON summary
(unique blob bytes) is printed on stdout.
"""
import argparse, hashlib, io, json, os, random, tarfile

def layer(path, name, size, seed):
    """Write a one-file tar of size bytes of noise; return (digest, size)."""
    rnd = random.Random(seed)
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = size, 1700000000, 0o644
        fh.write(info.tobuf(format=tarfile.GNU_FORMAT))
        left = size
        while left:
            n = min(left, 1 << 20)
            fh.write(rnd.randbytes(n))
            left -= n
        pad = (512 - size % 512) % 512
        fh.write(b"\0" * (pad + 1024))
    h = hashlib.sha256()
    with open(tmp, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    d = h.hexdigest()
    os.replace(tmp, os.path.join(path, d))
    return "sha256:" + d, os.path.getsize(os.path.join(path, d))

def blob(path, data):
    d = hashlib.sha256(data).hexdigest()
    with open(os.path.join(path, d), "wb") as fh:
        fh.write(data)
    return "sha256:" + d, len(data)

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, default=40)
    p.add_argument("--base-mb", type=int, default=600)
    p.add_argument("--own-mb", type=int, default=20)
    a = p.parse_args()
    blobs = os.path.join(a.out, "blobs/sha256")
    os.makedirs(blobs, exist_ok=True)
    base = [layer(blobs, "base%d" % i, a.base_mb << 20, i) for i in (1, 2)]
    unique = sum(s for _, s in base)
    manifests = []
    for i in range(a.count):
        own = layer(blobs, "own%d" % i, a.own_mb << 20, 100 + i)
        unique += own[1]
        layers = base + [own]
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                          "rootfs": {"type": "layers", "diff_ids": [d for d, _ in layers]}}).encode()
        cd, cs = blob(blobs, cfg)
        man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                          "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s} for d, s in layers]}).encode()
        md, ms = blob(blobs, man)
        manifests.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": ms,
                          "annotations": {"org.opencontainers.image.ref.name": "app-%02d" % i}})
    with open(os.path.join(a.out, "index.json"), "w") as fh:
        json.dump({"schemaVersion": 2, "manifests": manifests}, fh)
    with open(os.path.join(a.out, "oci-layout"), "w") as fh:
        fh.write('{"imageLayoutVersion":"1.0.0"}')
    json.dump({"images": ["app-%02d:v1" % i for i in range(a.count)], "unique_bytes": unique}, __import__("sys").stdout)
    print()

if __name__ == "__main__":
    main()
