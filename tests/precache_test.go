package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/seedbuild/seedbuild/internal/scratch"
)

// treeHash describes every entry under dir: path, mode, size, mtime and a
// content hash, to prove that nothing in it changed.
func treeHash(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sum := ""
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			h := sha256.Sum256(data)
			sum = hex.EncodeToString(h[:])
		}
		rel, _ := filepath.Rel(dir, p)
		lines = append(lines, fmt.Sprintf("%s %v %d %d %s", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), sum))
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestContainersList(t *testing.T) {
	f := getFixtures(t)
	root := smallRoot(t, nil)
	storeDir := filepath.Join(root, "var/lib/containers/storage")
	run, err := os.MkdirTemp("/tmp", "sbnode")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(run)
	dest := func(name string) string { return "containers-storage:[overlay@" + storeDir + "+" + run + "]" + name }
	sh(t, nil, "skopeo", "copy", "-q", "oci-archive:"+f.base, dest("quay.io/openshift-release-dev/ocp-v4.0-art-dev:node-image"))
	sh(t, nil, "skopeo", "copy", "-q", "oci-archive:"+f.classic, dest("registry.redhat.io/redhat/redhat-operator-index:v4.20"))
	sh(t, nil, "skopeo", "copy", "-q", "oci-archive:"+f.bootc, dest("quay.io/example/workload:v1"))
	scratch.UnmountAll(storeDir)
	before := treeHash(t, storeDir)

	out := filepath.Join(t.TempDir(), "seed.tar")
	create(t, "--rootfs", root, "--base", "oci-archive:"+f.base, "--output", "oci-archive:"+out)
	if after := treeHash(t, storeDir); after != before {
		t.Errorf("create changed the node's container store")
	}
	img := readArchive(t, out)
	got := string(img.layer(t, len(img.manifest.Layers)-1)[seedPrefix+"containers.list"].data)
	want := "quay.io/example/workload:v1\nquay.io/openshift-release-dev/ocp-v4.0-art-dev:node-image\n"
	if got != want {
		t.Errorf("containers.list = %q, want %q", got, want)
	}

	list := writeTemp(t, "# pre-pull these\nquay.io/a/b:1\n\nquay.io/c/d@sha256:"+strings.Repeat("a", 64)+"\n")
	out2 := filepath.Join(t.TempDir(), "seed.tar")
	create(t, "--rootfs", root, "--base", "oci-archive:"+f.base, "--containers-list", list, "--output", "oci-archive:"+out2)
	img2 := readArchive(t, out2)
	got = string(img2.layer(t, len(img2.manifest.Layers)-1)[seedPrefix+"containers.list"].data)
	if want := "quay.io/a/b:1\nquay.io/c/d@sha256:" + strings.Repeat("a", 64) + "\n"; got != want {
		t.Errorf("containers.list from --containers-list = %q, want %q", got, want)
	}
}
