package ostreerepo

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/seedbuild/seedbuild/internal/selabel"
	"golang.org/x/sys/unix"
)

// makeTree lays out a tree with what a root holds: owners, modes, setuid,
// xattrs (more than one, to check their order), symlinks, a hard link,
// empty and nested folders, empty and large files, and names that sort
// differently by byte.
func makeTree(t *testing.T, root string) {
	t.Helper()
	big := strings.Repeat("0123456789abcdef", 1<<14)
	files := []struct {
		path, content string
		mode          os.FileMode
		uid, gid      int
	}{
		{"usr/bin/tool", "#!/bin/sh\necho hi\n", 0o755, 0, 0},
		{"usr/bin/suid", "x", 0o4755, 0, 0},
		{"usr/lib/empty", "", 0o644, 0, 0},
		{"usr/lib/big.bin", big, 0o600, 0, 0},
		{"usr/share/owned", "core's\n", 0o640, 1000, 1000},
		{"usr/share/B", "upper\n", 0o644, 0, 0},
		{"usr/share/a", "lower\n", 0o644, 0, 0},
		{"usr/etc/os-release", "ID=test\n", 0o644, 0, 0},
		{"usr/lib/deep/er/still/file", "deep\n", 0o444, 0, 0},
	}
	for _, f := range files {
		p := filepath.Join(root, f.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, f.uid, f.gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "usr/bin/suid"), 0o755|os.ModeSetuid)
	for _, d := range []string{"usr/lib/emptydir", "var", "proc"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(root, "proc"), 0o555)
	os.Chown(filepath.Join(root, "usr/share"), 0, 1000)
	must(t, os.Symlink("usr/bin", filepath.Join(root, "bin")))
	must(t, os.Symlink("../lib/big.bin", filepath.Join(root, "usr/bin/link")))
	must(t, os.Link(filepath.Join(root, "usr/bin/tool"), filepath.Join(root, "usr/bin/tool-again")))
	must(t, unix.Lsetxattr(filepath.Join(root, "usr/bin/tool"), "user.zz", []byte("last"), 0))
	must(t, unix.Lsetxattr(filepath.Join(root, "usr/bin/tool"), "user.aa", []byte("first\x00"), 0))
	must(t, unix.Lsetxattr(filepath.Join(root, "usr/share"), "user.dir", []byte("a folder's"), 0))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func ostree(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ostree", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ostree %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// needOwnersAndOstree skips a test unless it runs as root (to give files
// owners) and fails it without ostree.
func needOwnersAndOstree(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to give files owners")
	}
	if _, err := exec.LookPath("ostree"); err != nil {
		t.Fatal("ostree is not installed (make test installs it)")
	}
}

// TestCommitMatchesOstree commits the same tree with ostree commit
// --consume and with Commit, into two bare repos: every checksum must be
// the same, and ostree fsck must find every object of Commit's sound.
func TestCommitMatchesOstree(t *testing.T) {
	needOwnersAndOstree(t)
	dir := t.TempDir()
	repos := map[string]string{}
	for _, name := range []string{"ostree", "go"} {
		repos[name] = filepath.Join(dir, name+"-repo")
		ostree(t, "init", "--mode=bare", "--repo="+repos[name])
		makeTree(t, filepath.Join(dir, name+"-tree"))
	}
	want := strings.TrimSpace(ostree(t, "commit", "--repo="+repos["ostree"], "--consume", "--branch=test", "--tree=dir="+filepath.Join(dir, "ostree-tree")))
	got, err := Commit(context.Background(), repos["go"], filepath.Join(dir, "go-tree"), "test", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ls := func(repo, commit string) string { return ostree(t, "ls", "-R", "-C", "-X", "--repo="+repo, commit) }
	if w, g := ls(repos["ostree"], want), ls(repos["go"], got); w != g {
		t.Errorf("the trees differ; ostree commit:\n%s\nCommit:\n%s", w, g)
	}
	ostree(t, "fsck", "--repo="+repos["go"])
	if rev := strings.TrimSpace(ostree(t, "rev-parse", "--repo="+repos["go"], "test")); rev != got {
		t.Errorf("the ref test is at %s, want %s", rev, got)
	}
	// The files were taken over: only folders are left.
	filepath.WalkDir(filepath.Join(dir, "go-tree"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("%s was left in the tree", p)
		}
		return nil
	})
	out := filepath.Join(dir, "checkout")
	ostree(t, "checkout", "--repo="+repos["go"], got, out)
	if data, err := os.ReadFile(filepath.Join(out, "usr/share/owned")); err != nil || string(data) != "core's\n" {
		t.Errorf("the checkout's usr/share/owned: %q, %v", data, err)
	}
}

// TestCommitWithCutDown: the cut-down commit holds what the rule keeps,
// with the same checksums as in the full one, and ostree fsck finds both
// sound.
func TestCommitWithCutDown(t *testing.T) {
	needOwnersAndOstree(t)
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	ostree(t, "init", "--mode=bare", "--repo="+repo)
	makeTree(t, filepath.Join(dir, "tree"))
	// Keep all outside usr, usr/etc whole, and the files of usr/bin.
	keep := func(rel string, dir bool) Keep {
		switch {
		case rel == "usr" || rel == "usr/bin":
			return Descend
		case rel == "usr/etc" || !strings.HasPrefix(rel, "usr/"):
			return Whole
		case strings.HasPrefix(rel, "usr/bin/") && !dir:
			return Whole
		}
		return Drop
	}
	full, cut, err := CommitWithCutDown(context.Background(), repo, filepath.Join(dir, "tree"), "test", "", nil, keep)
	if err != nil {
		t.Fatal(err)
	}
	if full == cut || cut == "" {
		t.Fatalf("full %s, cut %q: want two commits", full, cut)
	}
	ostree(t, "fsck", "--repo="+repo)
	entries := func(commit string) map[string]string {
		m := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(ostree(t, "ls", "-R", "-C", "-X", "--repo="+repo, commit)), "\n") {
			f := strings.Fields(l)
			// The path is the field after the checksum (and before a
			// symlink's target); the rest says the entry's kind and meta.
			for i, v := range f {
				if strings.HasPrefix(v, "/") {
					m[v] = strings.Join(f[:i], " ")
					break
				}
			}
		}
		return m
	}
	fm, cm := entries(full), entries(cut)
	want := []string{"/", "/bin", "/proc", "/var", "/usr", "/usr/etc", "/usr/etc/os-release", "/usr/bin", "/usr/bin/tool", "/usr/bin/link", "/usr/bin/suid", "/usr/bin/tool-again"}
	for _, p := range want {
		if cm[p] == "" {
			t.Errorf("the cut-down commit has no %s", p)
		} else if p != "/" && p != "/usr" && cm[p] != fm[p] {
			t.Errorf("%s differs: cut %q, full %q", p, cm[p], fm[p])
		}
	}
	if len(cm) != len(want) {
		t.Errorf("the cut-down commit has %d entries, want %d: %v", len(cm), len(want), cm)
	}
	if rev := strings.TrimSpace(ostree(t, "rev-parse", "--repo="+repo, "test")); rev != full {
		t.Errorf("the ref test is at %s, want the full commit %s", rev, full)
	}
	// Every object written under a temporary name got its own: none is
	// left in the repo's tmp.
	if left, _ := filepath.Glob(filepath.Join(repo, "tmp", "seedbuild-object-*")); len(left) > 0 {
		t.Errorf("objects left under temporary names: %v", left)
	}
}

// TestCommitRefusesDevices: ostree keeps no device nodes.
func TestCommitRefusesDevices(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, to make a device node")
	}
	dir := t.TempDir()
	ostree(t, "init", "--mode=bare", "--repo="+filepath.Join(dir, "repo"))
	must(t, os.MkdirAll(filepath.Join(dir, "tree/dev"), 0o755))
	must(t, unix.Mknod(filepath.Join(dir, "tree/dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	if _, err := Commit(context.Background(), filepath.Join(dir, "repo"), filepath.Join(dir, "tree"), "x", "", nil); err == nil || !strings.Contains(err.Error(), "dev/null") {
		t.Errorf("Commit of a tree with a device: %v, want an error naming it", err)
	}
}

// TestCommitRefusesOtherModes: the objects written are a bare repo's.
func TestCommitRefusesOtherModes(t *testing.T) {
	dir := t.TempDir()
	ostree(t, "init", "--mode=archive", "--repo="+filepath.Join(dir, "repo"))
	must(t, os.MkdirAll(filepath.Join(dir, "tree/usr"), 0o755))
	_, err := Commit(context.Background(), filepath.Join(dir, "repo"), filepath.Join(dir, "tree"), "x", "", nil)
	if err == nil || !strings.Contains(err.Error(), "mode archive") {
		t.Errorf("Commit into an archive repo: %v, want a refusal naming its mode", err)
	}
}

// TestCommitRefusesARootThatIsNoFolder: a root that is a file or a symlink
// is refused, and left where it is (the commit takes files over).
func TestCommitRefusesARootThatIsNoFolder(t *testing.T) {
	for _, tc := range []struct {
		name string
		make func(p string) error
	}{
		{"file", func(p string) error { return os.WriteFile(p, []byte("x"), 0o644) }},
		{"symlink", func(p string) error { return os.Symlink("elsewhere", p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ostree(t, "init", "--mode=bare", "--repo="+filepath.Join(dir, "repo"))
			root := filepath.Join(dir, "root")
			must(t, tc.make(root))
			_, err := Commit(context.Background(), filepath.Join(dir, "repo"), root, "x", "", nil)
			if err == nil || !strings.Contains(err.Error(), "not a folder") {
				t.Errorf("Commit of a %s: %v, want a refusal", tc.name, err)
			}
			if _, err := os.Lstat(root); err != nil {
				t.Errorf("the %s given as the root is gone: %v", tc.name, err)
			}
		})
	}
}

// labelledTree is makeTree with the synthetic SELinux policy of package
// selabel's testdata under etc/selinux (or usr/etc/selinux, with usrEtc)
// and paths its rules tell apart.
func labelledTree(t *testing.T, root string, usrEtc bool) {
	t.Helper()
	makeTree(t, root)
	etc := "etc"
	if usrEtc {
		etc = "usr/etc"
	}
	must(t, os.MkdirAll(filepath.Join(root, etc), 0o755))
	if out, err := exec.Command("cp", "-a", "../selabel/testdata/etc/selinux", filepath.Join(root, etc)+"/").CombinedOutput(); err != nil {
		t.Fatalf("copying the policy: %v\n%s", err, out)
	}
	for _, f := range []string{etc + "/os-release", etc + "/hosts", etc + "/shadow", etc + "/ssh/ssh_host_ed25519_key", etc + "/systemd/system/a.service",
		"usr/lib64/libc.so.6", "usr/bin/bash", "usr/sbin/sshd", "usr/lib/systemd/systemd", "tmp/x", "var/tmp/x",
		"home/core/.bashrc", "var/home/core/.bashrc", "var/log/messages.log", "opt/site/tool", "usr/local/bin/tool"} {
		must(t, os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755))
		must(t, os.WriteFile(filepath.Join(root, f), []byte(f+"\n"), 0o644))
	}
	must(t, os.MkdirAll(filepath.Join(root, "mnt/data"), 0o755))
	must(t, os.Symlink("../run", filepath.Join(root, "var/run")))
	// A label on disk that the policy replaces, and one on a path it
	// gives none (<<none>>), which stays.
	must(t, unix.Lsetxattr(filepath.Join(root, "usr/bin/bash"), "security.selinux", []byte("system_u:object_r:stale_t:s0\x00"), 0))
	must(t, unix.Lsetxattr(filepath.Join(root, "tmp/x"), "security.selinux", []byte("system_u:object_r:kept_t:s0\x00"), 0))
}

// xattrsByPath reads ostree ls -R -X of a commit (under prefix, which is
// cut from the paths) as each path's xattrs, their order left out: an
// ostree older than 2025.2 appends the label after the others.
func xattrsByPath(t *testing.T, repo, commit, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	args := []string{"ls", "-R", "-X", "--repo=" + repo, commit}
	if prefix != "" {
		args = append(args, prefix)
	}
	for _, line := range strings.Split(strings.TrimSpace(ostree(t, args...)), "\n") {
		open, closing := strings.Index(line, "{ "), strings.LastIndex(line, " }")
		if open < 0 || closing < open {
			t.Fatalf("ostree ls -X: %q", line)
		}
		path := strings.TrimPrefix(strings.TrimSpace(line[closing+2:]), prefix)
		x := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(line[open+2:closing], "@a(ayay) "), "["), "]")
		entries := strings.Split(x, "), (")
		for i := range entries {
			// GVariant's text names the type at the array's first value.
			entries[i] = strings.ReplaceAll(strings.Trim(entries[i], "()"), "[byte ", "[")
		}
		sort.Strings(entries)
		out[path] = strings.Join(entries, "; ")
	}
	return out
}

// TestCommitLabelsMatchOstree commits the same policy-bearing tree with
// ostree commit --consume --selinux-policy and with CommitWith labelled by
// selabel.Policy: every path must carry the same xattrs, labels included,
// and ostree fsck must find Commit's objects sound. Then the tree with
// its /etc as /usr/etc, labelled with UsrEtcAsEtc, must give /usr/etc what
// ostree gave /etc (this ostree, 2022.7, has no labelling epoch to compare
// with directly).
func TestCommitLabelsMatchOstree(t *testing.T) {
	needOwnersAndOstree(t)
	dir := t.TempDir()
	commitBoth := func(usrEtc bool) (ostreeRepo, ostreeSum, goRepo, goSum string) {
		sub := filepath.Join(dir, map[bool]string{false: "etc", true: "usretc"}[usrEtc])
		ostreeRepo, goRepo = filepath.Join(sub, "ostree-repo"), filepath.Join(sub, "go-repo")
		must(t, os.MkdirAll(sub, 0o755))
		ostree(t, "init", "--mode=bare", "--repo="+ostreeRepo)
		ostree(t, "init", "--mode=bare", "--repo="+goRepo)
		labelledTree(t, filepath.Join(sub, "ostree-tree"), false)
		labelledTree(t, filepath.Join(sub, "go-tree"), usrEtc)
		ostreeSum = strings.TrimSpace(ostree(t, "commit", "--repo="+ostreeRepo, "--consume", "--branch=test",
			"--selinux-policy="+filepath.Join(sub, "ostree-tree"), "--tree=dir="+filepath.Join(sub, "ostree-tree")))
		policy, err := selabel.Load(filepath.Join(sub, "go-tree"))
		if err != nil || policy == nil {
			t.Fatalf("loading the policy: %v, %v", policy, err)
		}
		defer policy.Close()
		policy.UsrEtcAsEtc = usrEtc
		goSum, _, err = CommitWith(context.Background(), goRepo, filepath.Join(sub, "go-tree"), "test", "", Options{Labels: policy})
		if err != nil {
			t.Fatal(err)
		}
		ostree(t, "fsck", "--repo="+goRepo)
		return
	}
	oRepo, oSum, gRepo, gSum := commitBoth(false)
	want, got := xattrsByPath(t, oRepo, oSum, ""), xattrsByPath(t, gRepo, gSum, "")
	compareXattrs(t, want, got)
	if !strings.Contains(got["/usr/bin/bash"], "shell_exec_t") || !strings.Contains(got["/tmp/x"], "kept_t") {
		t.Errorf("/usr/bin/bash %s, /tmp/x %s: want the policy's label and the one it left", got["/usr/bin/bash"], got["/tmp/x"])
	}

	oRepo, oSum, gRepo, gSum = commitBoth(true)
	compareXattrs(t, xattrsByPath(t, oRepo, oSum, "/etc"), xattrsByPath(t, gRepo, gSum, "/usr/etc"))
}

func compareXattrs(t *testing.T, want, got map[string]string) {
	t.Helper()
	if len(want) < 20 || len(got) != len(want) {
		t.Errorf("%d paths from ostree commit, %d from CommitWith", len(want), len(got))
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: ostree commit gave xattrs %s, CommitWith %s", p, w, got[p])
		}
	}
}
