package imageref

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

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
