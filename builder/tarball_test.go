package builder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/seedbuild/seedbuild/labels"
)

// nodeRoot makes a root laid out as a booted ostree node: the deployment
// node/<commit>.0 with the origin given ("" for none), a boot link to it,
// and /ostree a link into /sysroot as on a node.
func nodeRoot(t *testing.T, commit, origin string) string {
	t.Helper()
	root := t.TempDir()
	dep := filepath.Join(root, "sysroot/ostree/deploy/node/deploy", commit+".0")
	boot := filepath.Join(root, "sysroot/ostree/boot.1/node/cafe")
	for _, d := range []string{dep, boot} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if origin != "" {
		if err := os.WriteFile(dep+".origin", []byte(origin), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../../../deploy/node/deploy/"+commit+".0", filepath.Join(boot, "0")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sysroot/ostree", filepath.Join(root, "ostree")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestFindNodeDeployment(t *testing.T) {
	commit := strings.Repeat("ab", 32)
	other := strings.Repeat("cd", 32)
	origin := "[origin]\nrefspec=debian:node\n"
	node := labels.Deployment{OSName: "node", Checksum: commit}
	fromURL := labels.ImageOrigin("example.org/os@sha256:" + other)
	status := func(id string) []byte { return []byte(`{"deployments":[{"id":"` + id + `","booted":true}]}`) }
	tests := []struct {
		name       string
		origin     string // the deployment's .origin on disk
		rpmOstree  []byte
		cmdline    string
		live       bool
		osImageURL string
		want       nodeDeployment
		err        string
	}{
		{name: "live, by the kernel's ostree= link", origin: origin, cmdline: "root=/dev/vda rw ostree=/ostree/boot.1/node/cafe/0 quiet", live: true,
			want: nodeDeployment{dep: node, known: true, origin: []byte(origin), originFrom: "/ostree/deploy/node/deploy/" + commit + ".0.origin"}},
		{name: "live, a dangling ostree= link, origin from osImageURL", origin: origin, cmdline: "ostree=/ostree/boot.1/node/cafe/1", live: true, osImageURL: "example.org/os@sha256:" + other,
			want: nodeDeployment{origin: []byte(fromURL), originFrom: "made from the MachineConfig's osImageURL"}},
		{name: "a folder root's only deployment", origin: origin,
			want: nodeDeployment{dep: node, known: true, origin: []byte(origin), originFrom: "/ostree/deploy/node/deploy/" + commit + ".0.origin"}},
		{name: "a deployment without its origin", osImageURL: "example.org/os@sha256:" + other,
			want: nodeDeployment{dep: node, known: true, origin: []byte(fromURL), originFrom: "made from the MachineConfig's osImageURL"}},
		{name: "rpm-ostree names the booted deployment", origin: origin, rpmOstree: status("node-" + commit + ".0"), cmdline: "ostree=/ostree/boot.1/node/cafe/1", live: true,
			want: nodeDeployment{dep: node, known: true, origin: []byte(origin), originFrom: "/ostree/deploy/node/deploy/" + commit + ".0.origin"}},
		{name: "rpm-ostree names a deployment the root lacks", origin: origin, rpmOstree: status("rhcos-" + other + ".2"),
			want: nodeDeployment{dep: labels.Deployment{OSName: "rhcos", Checksum: other, Serial: 2}, known: true}},
		{name: "rpm-ostree without an id the agent can read", rpmOstree: []byte(`{"deployments":[{"checksum":"` + commit + `","booted":true}]}`),
			err: "has no '-'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := nodeRoot(t, commit, tt.origin)
			got, err := findNodeDeployment(root, tt.rpmOstree, tt.cmdline, tt.live, tt.osImageURL)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("findNodeDeployment() error = %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(nodeDeployment{})); diff != "" {
				t.Errorf("findNodeDeployment() differs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNodeDeploymentWithCommit(t *testing.T) {
	commit := strings.Repeat("ab", 32)
	got := nodeDeployment{}.withCommit(commit)
	want := nodeDeployment{dep: labels.Deployment{OSName: "rhcos", Checksum: commit}, known: true,
		origin: []byte("[origin]\nrefspec=" + commit + "\n"), originFrom: got.originFrom}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(nodeDeployment{})); diff != "" {
		t.Errorf("withCommit() differs (-want +got):\n%s", diff)
	}
	kept := nodeDeployment{origin: []byte("x")}.withCommit(commit)
	if string(kept.origin) != "x" {
		t.Errorf("withCommit() replaced an origin that was there: %q", kept.origin)
	}
}

func TestParseStringArray(t *testing.T) {
	for in, want := range map[string][]string{
		"['rhcos/seed']\n": {"rhcos/seed"},
		"['a', 'b/c']":     {"a", "b/c"},
		"@as []":           nil,
		"['unterminated":   nil,
	} {
		if got := parseStringArray(in); !cmp.Equal(got, want) {
			t.Errorf("parseStringArray(%q) = %q, want %q", in, got, want)
		}
	}
}
