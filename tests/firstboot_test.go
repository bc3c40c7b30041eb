package tests

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFirstBootScriptMatchesDeploy: the seed's first-boot script
// (seedbuild-apply-etc.service runs it) and deploy lay the same /etc state
// into the same tree. The seed's commit is checked out as a plain
// `ostree admin deploy` would make it (/etc a copy of /usr/etc), the script
// runs in it under busybox, and its /etc is compared with the one deploy
// made. The booted VM test runs the script for real.
func TestFirstBootScriptMatchesDeploy(t *testing.T) {
	f := getFixtures(t)
	st := newStore(t)
	mustSeedbuild(t, st.flags("create", "-q", "--rootfs", f.root, "--base", "oci-archive:"+f.base, "--tag", "seed:firstboot")...)
	sys := newSysroot(t)
	mustSeedbuild(t, st.flags("deploy", "-q", "localhost/seed:firstboot", "--stateroot", "fb", "--sysroot", sys, "--method", "ostree")...)
	byDeploy := filepath.Join(deploymentDir(t, sys, "fb"), "etc")

	tree := filepath.Join(t.TempDir(), "tree")
	sh(t, nil, "ostree", "checkout", "--repo="+filepath.Join(sys, "ostree/repo"), "seedbuild/fb", tree)
	sh(t, nil, "cp", "-a", filepath.Join(tree, "usr/etc"), filepath.Join(tree, "etc"))
	tools := filepath.Join(tree, "tmp/busybox-bin")
	if err := os.MkdirAll(tools, 0o755); err != nil {
		t.Fatal(err)
	}
	sh(t, nil, "cp", "/bin/busybox", filepath.Join(tools, "busybox"))
	for _, applet := range []string{"sh", "cp", "rm", "touch", "cat", "["} {
		os.Symlink("busybox", filepath.Join(tools, applet))
	}
	script := "/usr/lib/openshift/seed/apply-etc"
	sh(t, nil, "chroot", tree, "/tmp/busybox-bin/busybox", "env", "PATH=/tmp/busybox-bin", "/tmp/busybox-bin/sh", script)

	got, want := etcListing(t, filepath.Join(tree, "etc")), etcListing(t, byDeploy)
	if got != want {
		t.Errorf("the first-boot script and deploy laid different /etc state (- deploy, + script):\n%s", lineDiff(want, got))
	}
	if !strings.Contains(got, ".seedbuild-etc-applied") {
		t.Errorf("the first-boot script left no stamp")
	}
	// Run again: the stamp makes it a no-op.
	os.WriteFile(filepath.Join(tree, "etc/chrony.conf"), []byte("changed after first boot\n"), 0o644)
	sh(t, nil, "chroot", tree, "/tmp/busybox-bin/busybox", "env", "PATH=/tmp/busybox-bin", "/tmp/busybox-bin/sh", script)
	if data, _ := os.ReadFile(filepath.Join(tree, "etc/chrony.conf")); string(data) != "changed after first boot\n" {
		t.Errorf("the first-boot script ran again over a stamped /etc")
	}
}

// etcListing lists a folder's entries: type, mode, owner, size, content
// hash or link target.
func etcListing(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		extra := ""
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			extra, _ = os.Readlink(p)
		case d.Type().IsRegular():
			extra = fileSHA(t, p)
		}
		fmt.Fprintf(&b, "%s %o %d:%d %s\n", rel, st.Mode, st.Uid, st.Gid, extra)
		return nil
	})
	return b.String()
}
