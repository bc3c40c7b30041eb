package labels

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const testChecksum = "ed4ab3244a76c6503a21441da650634b5abd25aba4255ca116782b2b3020519c"

func TestBootedDeployment(t *testing.T) {
	tests := []struct {
		name, doc string
		want      Deployment
		err       string
	}{
		{"rhcos", `{"deployments":[{"id":"rhcos-` + testChecksum + `.1","osname":"rhcos","checksum":"` + testChecksum + `","serial":1,"booted":true}]}`,
			Deployment{"rhcos", testChecksum, 1}, ""},
		{"booted is not first", `{"deployments":[{"id":"x-` + strings.Repeat("a", 64) + `.0","booted":false},{"id":"rhcos-` + testChecksum + `.0","booted":true}]}`,
			Deployment{"rhcos", testChecksum, 0}, ""},
		{"osname with a dash, from the id", `{"deployments":[{"id":"my-os-` + testChecksum + `.2","booted":true}]}`,
			Deployment{"my-os", testChecksum, 2}, ""},
		{"no booted deployment", `{"deployments":[{"id":"rhcos-` + testChecksum + `.0"}]}`, Deployment{}, "no booted deployment"},
		{"id without a dash", `{"deployments":[{"id":"` + testChecksum + `.0","booted":true}]}`, Deployment{}, "has no '-'"},
		{"id without a serial", `{"deployments":[{"id":"rhcos-` + testChecksum + `","booted":true}]}`, Deployment{}, "does not end in"},
		{"checksum disagrees", `{"deployments":[{"id":"rhcos-` + testChecksum + `.0","checksum":"` + strings.Repeat("b", 64) + `","booted":true}]}`, Deployment{}, "its checksum is"},
		{"serial disagrees", `{"deployments":[{"id":"rhcos-` + testChecksum + `.0","serial":3,"booted":true}]}`, Deployment{}, "its serial is 3"},
		{"not JSON", `{`, Deployment{}, "parsing rpm-ostree.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := BootedDeployment([]byte(tt.doc))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("BootedDeployment() error = %v, want one with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("BootedDeployment() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestRpmOstreeStatusReadsBack: the document made for a node without
// rpm-ostree names the deployment as the agent's prep reads it.
func TestRpmOstreeStatusReadsBack(t *testing.T) {
	d := Deployment{"rhcos", testChecksum, 1}
	for _, origin := range []string{ImageOrigin("example.org/os@sha256:" + testChecksum), "[origin]\nrefspec=debian:x\n", ""} {
		got, err := BootedDeployment(RpmOstreeStatus(d, origin))
		if err != nil || got != d {
			t.Errorf("BootedDeployment(RpmOstreeStatus(%+v, %q)) = %+v, %v, want the same deployment", d, origin, got, err)
		}
	}
	if got, want := AgentOriginFile(d), "ostree-"+testChecksum+".1.origin"; got != want {
		t.Errorf("AgentOriginFile() = %q, want %q", got, want)
	}
}

func TestOriginValue(t *testing.T) {
	origin := "# a comment\n[origin]\ncontainer-image-reference = ostree-unverified-registry:example.org/os:1\n\n[rpmostree]\nrefspec=other\n"
	tests := []struct{ key, want string }{
		{"container-image-reference", "ostree-unverified-registry:example.org/os:1"},
		{"refspec", ""},
		{"missing", ""},
	}
	for _, tt := range tests {
		if got := OriginValue(origin, tt.key); got != tt.want {
			t.Errorf("OriginValue(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	if diff := cmp.Diff("[origin]\ncontainer-image-reference=ostree-unverified-registry:r/o:1\n", ImageOrigin("r/o:1")); diff != "" {
		t.Errorf("ImageOrigin: %s", diff)
	}
}
