package tests

// The labels seedbuild's commit writer gives by a real policy (Debian's
// reference policy, in the booted tests' node OS) against ostree commit
// --selinux-policy. It boots nothing: its name puts it in the booted-node
// tests' run, which builds the node OS it reads.

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/seedbuild/seedbuild/internal/ostreerepo"
	"github.com/seedbuild/seedbuild/internal/selabel"
	"golang.org/x/sys/unix"
)

// TestBootedNodePolicyLabels commits the node OS (its tree as the node
// runs it: /usr/etc and all; every regular file empty but the policy's,
// see skeletonOf) twice,
// with ostree commit --consume --selinux-policy and with seedbuild's
// commit writer labelled by selabel.Policy: every path must carry the same
// checksum and xattrs (`ostree ls -R -C -X`), and ostree fsck find the
// second repo sound. The host's ostree (2022.7) has no labelling epoch: both
// label /usr/etc by the policy's rule for /usr/etc.
func TestBootedNodePolicyLabels(t *testing.T) {
	t.Parallel()
	nos := getNodeOS(t)
	dir := t.TempDir()
	ls := map[string]string{}
	for _, how := range []string{"ostree", "seedbuild"} {
		tree, repo := filepath.Join(dir, how+"-tree"), filepath.Join(dir, how+"-repo")
		skeletonOf(t, nos.repo, "node/x", tree)
		sh(t, nil, "ostree", "init", "--mode=bare", "--repo="+repo)
		var sum string
		if how == "ostree" {
			sum = strings.TrimSpace(sh(t, nil, "ostree", "commit", "--repo="+repo, "--consume", "--branch=x",
				"--selinux-policy="+tree, "--tree=dir="+tree))
		} else {
			policy, err := selabel.Load(tree)
			if err != nil || policy == nil {
				t.Fatalf("the node OS's SELinux policy: %v, %v", policy, err)
			}
			// The matcher, not libselinux's own lookup, is what is
			// compared (its file_contexts.bin agrees with the text).
			if policy.Fallback != "" {
				t.Errorf("the node OS's policy is looked up by libselinux: %s", policy.Fallback)
			}
			sum, _, err = ostreerepo.CommitWith(context.Background(), repo, tree, "x", "", ostreerepo.Options{Labels: policy})
			policy.Close()
			if err != nil {
				t.Fatal(err)
			}
			sh(t, nil, "ostree", "fsck", "--repo="+repo)
		}
		ls[how] = sh(t, nil, "ostree", "ls", "-R", "-C", "-X", "--repo="+repo, sum)
	}
	want, got := strings.Split(strings.TrimSpace(ls["ostree"]), "\n"), strings.Split(strings.TrimSpace(ls["seedbuild"]), "\n")
	if node := strings.Count(strings.TrimSpace(sh(t, nil, "ostree", "ls", "-R", "--repo="+nos.repo, "node/x")), "\n") + 1; len(got) != node {
		t.Errorf("the skeleton of the node OS has %d paths, the node OS %d", len(got), node)
	}
	var diffs []string
	for i := 0; i < max(len(want), len(got)) && len(diffs) < 20; i++ {
		if i >= len(want) || i >= len(got) || want[i] != got[i] {
			diffs = append(diffs, "ostree:    "+line(want, i), "seedbuild: "+line(got, i))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("the node OS committed by ostree and by seedbuild differ (first differences):\n%s", strings.Join(diffs, "\n"))
	}
	labelled := strings.Count(ls["seedbuild"], "security.selinux")
	if labelled < len(got)/2 {
		t.Errorf("%d of %d paths labelled", labelled, len(got))
	}
	t.Logf("node OS: %d paths, %d labelled by the policy, the same by ostree commit and by seedbuild", len(got), labelled)
}

// skeletonOf lays the tree of the commit ref out in dest, with every
// path's type, mode and owner, every regular file empty but those of its
// SELinux policy (/usr/etc/selinux), which are checked out whole: a label
// depends on the path and its file type, not its content, and a commit of
// empty files costs little. (Checking the whole node OS out and
// committing it twice, ostree's checksums on one core, took 290 s of CPU
// beside the booted tests' VMs.)
func skeletonOf(t *testing.T, repo, ref, dest string) {
	t.Helper()
	const policy = "/usr/etc/selinux"
	entry := regexp.MustCompile(`^([-dl])0*([0-7]+) +(\d+) +(\d+) +\d+ +(/.*)$`)
	for _, l := range strings.Split(strings.TrimSpace(sh(t, nil, "ostree", "ls", "-R", "--repo="+repo, ref)), "\n") {
		m := entry.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("ostree ls -R: a line not understood: %q", l)
		}
		mode, _ := strconv.ParseUint(m[2], 8, 32)
		uid, _ := strconv.Atoi(m[3])
		gid, _ := strconv.Atoi(m[4])
		p, target := m[5], ""
		if m[1] == "l" {
			var ok bool
			if p, target, ok = strings.Cut(p, " -> "); !ok {
				t.Fatalf("ostree ls -R: a symlink without its target: %q", l)
			}
		}
		if p == policy || strings.HasPrefix(p, policy+"/") {
			continue
		}
		full := filepath.Join(dest, p)
		err := os.MkdirAll(filepath.Dir(full), 0o755)
		switch {
		case err != nil:
		case m[1] == "d":
			err = os.MkdirAll(full, 0o755)
		case m[1] == "-":
			err = os.WriteFile(full, nil, 0o600)
		default:
			err = os.Symlink(target, full)
		}
		if err == nil {
			err = unix.Lchown(full, uid, gid)
		}
		if err == nil && m[1] != "l" {
			err = unix.Chmod(full, uint32(mode))
		}
		if err != nil {
			t.Fatalf("laying out %s of the node OS: %v", l, err)
		}
	}
	sh(t, nil, "ostree", "checkout", "--repo="+repo, "--force-copy", "--subpath="+policy, ref, filepath.Join(dest, policy))
}

func line(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(none)"
}
