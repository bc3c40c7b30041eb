package imageref

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/seedbuild/seedbuild/internal/scratch"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/image/v5/types"
)

func TestParse(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "registries.conf")
	os.WriteFile(conf, []byte("unqualified-search-registries = [\"registry.example.com\"]\n[aliases]\n\"rhcos\" = \"quay.example.com/openshift/rhcos\"\n"), 0o644)
	t.Setenv("CONTAINERS_REGISTRIES_CONF", conf)
	tests := []struct {
		name, want string
		bad        bool
	}{
		{"oci-archive:/var/tmp/seed.tar", "oci-archive:/var/tmp/seed.tar:", false},
		{"docker://registry.example.com/seeds/sno:4.20", "docker://registry.example.com/seeds/sno:4.20", false},
		{"registry.example.com/seeds/sno:4.20", "docker://registry.example.com/seeds/sno:4.20", false},
		{"localhost/seed:1", "docker://localhost/seed:1", false},
		{"seeds/sno:4.20", "docker://registry.example.com/seeds/sno:4.20", false},
		{"rhcos:4.20", "docker://quay.example.com/openshift/rhcos:4.20", false},
		{"bogus://x", "", true},
		{"", "", true},
		{"UPPER/case", "", true},
		{"Bad Name!!", "", true},
		{"/var/tmp/seed.tar", "", true},
		{"./seed", "", true},
	}
	for _, tt := range tests {
		ref, err := Parse(tt.name, nil)
		if (err != nil) != tt.bad {
			t.Errorf("Parse(%q) error = %v, want error %v", tt.name, err, tt.bad)
			continue
		}
		if errors.Is(err, ErrShortName) {
			t.Errorf("Parse(%q) = %v, a bad name reported as a registries.conf problem", tt.name, err)
		}
		if err == nil {
			if got := ref.Transport().Name() + ":" + ref.StringWithinTransport(); got != tt.want {
				t.Errorf("Parse(%q) = %s, want %s", tt.name, got, tt.want)
			}
		}
	}
}

func TestRetryable(t *testing.T) {
	// What a registry restart in the middle of a blob upload gives the
	// client: a write on a connection the transport has already closed.
	closedMidUpload := fmt.Errorf("writing blob: %w", &url.Error{Op: "Patch", URL: "http://127.0.0.1:5000/v2/x/blobs/uploads/1",
		Err: &net.OpError{Op: "readfrom", Net: "tcp", Err: &net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed}}})
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"connection closed mid-upload", closedMidUpload, true},
		{"broken pipe", fmt.Errorf("writing blob: %w", &net.OpError{Op: "write", Err: os.NewSyscallError("write", syscall.EPIPE)}), true},
		{"short read from the registry", fmt.Errorf("reading blob: %w", &url.Error{Op: "Get", Err: io.ErrUnexpectedEOF}), true},
		{"short read from a truncated archive", fmt.Errorf("reading blob: %w", io.ErrUnexpectedEOF), false},
		{"connection refused", &url.Error{Op: "Get", Err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}, true},
		{"cancelled", fmt.Errorf("copying: %w", context.Canceled), false},
		{"cancelled while the connection closed", errors.Join(context.Canceled, net.ErrClosed), false},
		{"deadline", context.DeadlineExceeded, false},
		{"plain error", errors.New("manifest unknown"), false},
	}
	for _, tt := range tests {
		if got := Retryable(tt.err); got != tt.want {
			t.Errorf("Retryable(%s: %v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestPolicyContext(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "policy.json")
	if err := os.WriteFile(good, []byte(`{"default":[{"type":"reject"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"default":`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		wantErr    string
	}{
		{"present", good, ""},
		{"missing", filepath.Join(dir, "none.json"), "install containers-common"},
		{"unreadable JSON", bad, "reading signature policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pc, err := PolicyContext(&types.SystemContext{SignaturePolicyPath: tc.path})
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("PolicyContext(%s) = %v, want a policy", tc.path, err)
				}
				pc.Destroy()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("PolicyContext(%s) = %v, want an error with %q", tc.path, err, tc.wantErr)
			}
			if tc.name == "missing" && !errors.Is(err, ErrNoPolicy) {
				t.Errorf("PolicyContext(%s) = %v, want ErrNoPolicy", tc.path, err)
			}
		})
	}
}

// ociLayout writes a one-layer OCI layout at dir and returns its reference.
func ociLayout(t *testing.T, dir string) types.ImageReference {
	t.Helper()
	blobs := filepath.Join(dir, "blobs/sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	put := func(data []byte) (string, int) {
		sum := sha256.Sum256(data)
		d := hex.EncodeToString(sum[:])
		if err := os.WriteFile(filepath.Join(blobs, d), data, 0o644); err != nil {
			t.Fatal(err)
		}
		return "sha256:" + d, len(data)
	}
	layer := make([]byte, 1024) // an empty tar: two zero blocks
	ld, ls := put(layer)
	cd, cs := put([]byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]}}`, ld)))
	md, ms := put([]byte(fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":%d}]}`, cd, cs, ld, ls)))
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "index.json"), []byte(fmt.Sprintf(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":%q,"size":%d}]}`, md, ms)), 0o644)
	ref, err := alltransports.ParseImageName("oci:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestCopyImageLocalIsAtomic: a local destination appears whole or not at
// all, and what a dead copy left beside it is removed.
func TestCopyImageLocalIsAtomic(t *testing.T) {
	dir := t.TempDir()
	src := ociLayout(t, filepath.Join(dir, "src"))
	pc, err := signature.NewPolicyContext(&signature.Policy{Default: []signature.PolicyRequirement{signature.NewPRInsecureAcceptAnything()}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Destroy()
	out := filepath.Join(dir, "seed.tar")
	for _, stamp := range []string{fmt.Sprintf("%s-%d", scratch.BootID(), deadPID(t)), fmt.Sprintf("0ldb00t0-%d", os.Getpid())} {
		os.WriteFile(filepath.Join(dir, ".seed.tar.partial-"+stamp), []byte("half"), 0o644)
	}
	dest, _ := alltransports.ParseImageName("oci-archive:" + out)
	if _, err := CopyImage(context.Background(), pc, dest, src, &copy.Options{}, Retry{}); err != nil {
		t.Fatalf("CopyImage to %s: %v", out, err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".seed.tar.partial-*"))
	if fi, err := os.Stat(out); err != nil || fi.Size() == 0 || len(left) != 0 {
		t.Errorf("after CopyImage: %s: %v; partials left: %v; want the archive and no partial", out, err, left)
	}
	missing, _ := alltransports.ParseImageName("oci:" + filepath.Join(dir, "none"))
	failed := filepath.Join(dir, "failed.tar")
	dest, _ = alltransports.ParseImageName("oci-archive:" + failed)
	if _, err := CopyImage(context.Background(), pc, dest, missing, &copy.Options{}, Retry{}); err == nil {
		t.Fatal("CopyImage from a missing layout succeeded")
	}
	left, _ = filepath.Glob(filepath.Join(dir, ".failed.tar.partial-*"))
	if _, err := os.Lstat(failed); err == nil || len(left) != 0 {
		t.Errorf("a failed copy left %s (%v) or partials %v", failed, err, left)
	}
}

// deadPID is a pid no process can have.
func deadPID(t *testing.T) int {
	data, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}
