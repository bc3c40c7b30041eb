package tests

// The labels seedbuild's commit writer gives by a real policy (Debian's
// reference policy, in the booted tests' node OS) against ostree commit
// --selinux-policy. It boots nothing: its name puts it in the booted-node
// tests' run, which builds the node OS it reads.

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/seedbuild/seedbuild/internal/ostreerepo"
	"github.com/seedbuild/seedbuild/internal/selabel"
)

// TestBootedNodePolicyLabels commits the node OS (its tree as the node
// runs it: /usr/etc and all, every file labelled at build time) twice,
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
		// Copies, not hard links into the cached node OS: the commit
		// relabels the files it takes over.
		sh(t, nil, "ostree", "checkout", "--repo="+nos.repo, "--force-copy", "node/x", tree)
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
	want, got := strings.Split(ls["ostree"], "\n"), strings.Split(ls["seedbuild"], "\n")
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

func line(lines []string, i int) string {
	if i < len(lines) {
		return lines[i]
	}
	return "(none)"
}
