package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSELinuxLabelsCarried labels a few of a node's /var and /etc files as
// an SELinux node has them, makes a native seed and deploys it with the
// ostree method: the seed's layers carry each label (PAX
// SCHILY.xattr.security.selinux), and the deployed files keep it. The CI
// host runs no SELinux, but its file system stores the labels as any
// xattr, so what seedbuild does with them is seen all the same.
func TestSELinuxLabelsCarried(t *testing.T) {
	f := getFixtures(t)
	root := filepath.Join(t.TempDir(), "root")
	sh(t, nil, "cp", "-a", f.root, root)
	labels := map[string]string{
		"var/lib/etcd/member/snap/db":  "system_u:object_r:container_var_lib_t:s0",
		"var/lib/kubelet":              "system_u:object_r:container_var_lib_t:s0",
		"etc/kubernetes/kubelet.conf":  "system_u:object_r:kubernetes_file_t:s0",
		"etc/kubernetes/seed-only.txt": "system_u:object_r:etc_t:s0:c1,c2",
	}
	writeFiles(t, root, map[string]string{"etc/kubernetes/seed-only.txt": "only on the seed node\n"})
	for p, label := range labels {
		if err := unix.Lsetxattr(filepath.Join(root, p), "security.selinux", []byte(label), 0); err != nil {
			t.Fatalf("labelling %s: %v", p, err)
		}
	}
	archive := filepath.Join(t.TempDir(), "seed.tar")
	mustSeedbuild(t, "create", "-q", "--rootfs", root, "--base", "oci-archive:"+f.base, "-o", "oci-archive:"+archive)

	// The seed's layers carry the labels: /var as itself, /etc under the
	// seed folder.
	img := readArchive(t, archive)
	n := len(img.manifest.Layers)
	entries := map[string]entry{}
	for i := n - 3; i < n; i++ {
		for name, e := range img.layer(t, i) {
			entries[name] = e
		}
	}
	for p, label := range labels {
		name := p
		if rel, ok := strings.CutPrefix(p, "etc/"); ok {
			name = "usr/lib/openshift/seed/etc/" + rel
		}
		e, ok := entries[name]
		if !ok {
			t.Errorf("the seed has no %s", name)
			continue
		}
		if got := e.hdr.PAXRecords["SCHILY.xattr.security.selinux"]; got != label {
			t.Errorf("%s in the seed's layers has label %q, want %q", name, got, label)
		}
	}

	// The deployed files keep them.
	sys := newSysroot(t)
	mustSeedbuild(t, "deploy", "-q", "oci-archive:"+archive, "--stateroot", "labelled", "--sysroot", sys, "--method", "ostree")
	dep := deploymentDir(t, sys, "labelled")
	for p, label := range labels {
		where := filepath.Join(sys, "ostree/deploy/labelled", p)
		if rel, ok := strings.CutPrefix(p, "etc/"); ok {
			where = filepath.Join(dep, "etc", rel)
		}
		buf := make([]byte, 256)
		n, err := unix.Lgetxattr(where, "security.selinux", buf)
		if err != nil || string(buf[:n]) != label {
			t.Errorf("deployed %s: label %q (%v), want %q", where, buf[:max(n, 0)], err, label)
		}
	}
	if _, err := os.Stat(filepath.Join(dep, "etc/kubernetes/seed-only.txt")); err != nil {
		t.Errorf("the seed-only /etc file is not in the deployment: %v", err)
	}
}
