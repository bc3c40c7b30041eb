package seedimage

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seedbuild/seedbuild/internal/xattrs"
	"golang.org/x/sys/unix"
)

// describeTree lists every path under root with its type, mode, owner,
// size, mtime (but for folders), symlink target, content and xattrs.
func describeTree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s mode=%o uid=%d gid=%d", rel, st.Mode, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " mtime=%d nlink=%d content=%q", st.Mtim.Sec, st.Nlink, data)
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			fmt.Fprintf(&b, " -> %s", target)
		}
		names, err := xattrs.List(p)
		if err != nil {
			return err
		}
		for _, n := range names {
			v, err := xattrs.Get(p, n)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %s=%x", n, v)
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestUnpackArchiveMatchesGNUTar extracts a GNU tar archive made with the
// flags the upstream agent uses (SELinux labels, xattrs, ACLs) with GNU
// tar and with UnpackArchive, each over a folder with content: the trees
// must be the same.
func TestUnpackArchiveMatchesGNUTar(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to give files owners (make test runs as root)")
	}
	for _, tool := range []string{"tar", "setfacl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (make test installs it)", tool)
		}
	}
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for _, d := range []string{"var/lib/app", "var/log/journal", "var/opt"} {
		must(t, os.MkdirAll(filepath.Join(src, d), 0o755))
	}
	files := map[string]string{"var/lib/app/data": "data\n", "var/lib/app/.wh.kept": "a plain file, not a whiteout\n",
		"var/log/journal/x": "log\n", "var/replaced": "new\n"}
	for name, content := range files {
		must(t, os.WriteFile(filepath.Join(src, name), []byte(content), 0o640))
	}
	must(t, os.Chown(filepath.Join(src, "var/lib/app/data"), 1234, 5678))
	must(t, os.Chmod(filepath.Join(src, "var/opt"), 0o1777))
	must(t, os.Link(filepath.Join(src, "var/lib/app/data"), filepath.Join(src, "var/lib/app/data-link")))
	must(t, os.Symlink("../lib/app/data", filepath.Join(src, "var/log/to-data")))
	must(t, unix.Lsetxattr(filepath.Join(src, "var/lib/app/data"), "user.seed", []byte("kept"), 0))
	must(t, unix.Lsetxattr(filepath.Join(src, "var/lib/app/data"), selinuxXattr, []byte("system_u:object_r:var_lib_t:s0"), 0))
	run("setfacl", "-m", "u:4321:rw,g:99:r", filepath.Join(src, "var/lib/app/data"))
	run("setfacl", "-d", "-m", "u:4321:rwx", filepath.Join(src, "var/log/journal"))
	archive := filepath.Join(dir, "var.tgz")
	run("tar", "czf", archive, "--selinux", "--xattrs", "--xattrs-include=*", "--acls", "--numeric-owner", "-C", src, ".")

	var trees []string
	for _, how := range []string{"gnu-tar", "go"} {
		dest := filepath.Join(dir, how)
		// What is there already: os-init's folders, a file the archive
		// replaces, one it leaves.
		must(t, os.MkdirAll(filepath.Join(dest, "var/lib"), 0o700))
		must(t, os.WriteFile(filepath.Join(dest, "var/replaced"), []byte("old\n"), 0o600))
		must(t, os.WriteFile(filepath.Join(dest, "var/lib/other"), []byte("stays\n"), 0o600))
		// The same time in both trees: they are made a moment apart, and
		// a second may turn between them.
		must(t, os.Chtimes(filepath.Join(dest, "var/lib/other"), time.Unix(1700000000, 0), time.Unix(1700000000, 0)))
		if how == "gnu-tar" {
			run("tar", "xzf", archive, "-C", dest, "--selinux", "--xattrs", "--xattrs-include=*", "--acls", "--numeric-owner")
		} else if _, err := UnpackArchive(context.Background(), archive, dest, UnpackOptions{}); err != nil {
			t.Fatalf("UnpackArchive() = %v", err)
		}
		trees = append(trees, describeTree(t, dest))
	}
	if trees[0] != trees[1] {
		t.Errorf("the trees differ; GNU tar:\n%s\nUnpackArchive:\n%s", trees[0], trees[1])
	}
	if !strings.Contains(trees[1], "system.posix_acl_access") || !strings.Contains(trees[1], "system.posix_acl_default") {
		t.Errorf("the ACLs were not kept:\n%s", trees[1])
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
