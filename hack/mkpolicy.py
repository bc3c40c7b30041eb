#!/usr/bin/env python3
"""Write a synthetic SELinux policy into a tree, for seedbuild's bench.

    mkpolicy.py DIR [--modules N]

DIR is the tree's etc/selinux (or usr/etc/selinux). It gets a config
(SELINUX=permissive, SELINUXTYPE=default) and default/: the file contexts
of internal/selabel/testdata (the forms the reference policy uses) followed
by N modules' worth of rules in the shapes refpolicy's modules give
(a program's executable, its library, config, state, log and runtime
folders, its unit files: eleven rules each, 400 modules by default, about
4,400 rules, the size of a distribution's policy), with its .local,
.homedirs and .subs_dist; and a binary policy file, which ostree only
checksums. What matters for labelling cost is there: libselinux tries the
rules of a path's first component, the last first, until one matches.

The same arguments always give the same files.
"""
import argparse
import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.join(HERE, "..", "internal", "selabel", "testdata", "etc", "selinux")

# One module's rules; {m} is its name.
MODULE = [
    ("/usr/bin/{m}(-[a-z]+)?", "--", "{m}_exec_t"),
    ("/usr/sbin/{m}d", "--", "{m}_exec_t"),
    ("/usr/lib/{m}(/.*)?", "", "{m}_lib_t"),
    ("/usr/lib/{m}/.*\\.so(\\.[^/]*)*", "--", "lib_t"),
    ("/usr/libexec/{m}(/.*)?", "", "{m}_exec_t"),
    ("/usr/share/{m}(/.*)?", "", "usr_t"),
    ("/usr/lib/systemd/system/{m}.*", "--", "{m}_unit_file_t"),
    ("/etc/{m}(/.*)?", "", "{m}_conf_t"),
    ("/var/lib/{m}(/.*)?", "", "{m}_var_lib_t"),
    ("/var/log/{m}.*", "", "{m}_log_t"),
    ("/run/{m}(/.*)?", "", "{m}_runtime_t"),
]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir", help="the tree's etc/selinux")
    p.add_argument("--modules", type=int, default=400)
    a = p.parse_args()
    files = os.path.join(a.dir, "default", "contexts", "files")
    os.makedirs(files, exist_ok=True)
    os.makedirs(os.path.join(a.dir, "default", "policy"), exist_ok=True)
    shutil.copyfile(os.path.join(TESTDATA, "config"), os.path.join(a.dir, "config"))
    shutil.copyfile(os.path.join(TESTDATA, "default", "policy", "policy.33"),
                    os.path.join(a.dir, "default", "policy", "policy.33"))
    src = os.path.join(TESTDATA, "default", "contexts", "files")
    for name in ("file_contexts.local", "file_contexts.homedirs", "file_contexts.subs_dist"):
        shutil.copyfile(os.path.join(src, name), os.path.join(files, name))
    with open(os.path.join(src, "file_contexts")) as f:
        base = f.read()
    out = [base]
    for i in range(a.modules):
        m = "pkg%03d" % i
        for spec, ftype, t in MODULE:
            out.append("%s\t%s\tsystem_u:object_r:%s:s0\n" % (spec.format(m=m), ftype, t.format(m=m)))
    with open(os.path.join(files, "file_contexts"), "w") as f:
        f.write("".join(out))


if __name__ == "__main__":
    main()
