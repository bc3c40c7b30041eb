package seedimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/seedbuild/seedbuild/labels"
	"go.podman.io/image/v5/oci/archive"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage/pkg/reexec"
)

// testTar writes the members of a tar for the tests: files, and blobs
// under their sha256.
type testTar struct {
	buf bytes.Buffer
	tw  *tar.Writer
}

func newTestTar() *testTar {
	a := &testTar{}
	a.tw = tar.NewWriter(&a.buf)
	return a
}

func (a *testTar) add(name string, data []byte) {
	a.tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg})
	a.tw.Write(data)
}

// blob adds data as blobs/sha256/HEX and returns "sha256:HEX".
func (a *testTar) blob(data []byte) string {
	h := sha256Hex(data)
	a.add("blobs/sha256/"+h, data)
	return "sha256:" + h
}

// bytes ends the tar and returns it.
func (a *testTar) bytes() []byte {
	a.tw.Close()
	return a.buf.Bytes()
}

func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// ociArchive builds a small OCI archive whose image has the given labels.
func ociArchive(t testing.TB, lbls string) []byte {
	a := newTestTar()
	cfg := []byte(`{"architecture":"amd64","os":"linux","config":{"Labels":` + lbls + `},"rootfs":{"type":"layers","diff_ids":[]}}`)
	cfgDigest := a.blob(cfg)
	mf := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		cfgDigest + `","size":` + itoa(len(cfg)) + `},"layers":[]}`)
	mfDigest := a.blob(mf)
	a.add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	a.add("index.json", []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"`+mfDigest+`","size":`+itoa(len(mf))+`}]}`))
	return a.bytes()
}

func itoa(n int) string { return strconv.Itoa(n) }

// archiveRef writes data as an archive and returns its reference.
func archiveRef(t testing.TB, data []byte) types.ImageReference {
	p := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ref, err := archive.ParseReference(p)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func readBytes(t testing.TB, data []byte) (*Description, error) {
	return Read(context.Background(), archiveRef(t, data), &types.SystemContext{BigFilesTemporaryDir: t.TempDir()})
}

func describeBytes(t testing.TB, data []byte) (*Description, error) {
	return Describe(context.Background(), archiveRef(t, data), &types.SystemContext{BigFilesTemporaryDir: t.TempDir()})
}

func TestReadArchive(t *testing.T) {
	tests := []struct {
		name   string
		labels string
		kind   string
		err    error
	}{
		{"native", `{"com.openshift.lifecycle-agent.seed_format_version":"5","containers.bootc":"1"}`, "native", nil},
		{"classic", `{"com.openshift.lifecycle-agent.seed_format_version":"4"}`, "classic", nil},
		{"not a seed", `{}`, "not-a-seed", labels.ErrNotASeed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := readBytes(t, ociArchive(t, tt.labels))
			if !errors.Is(err, tt.err) {
				t.Fatalf("Read() error = %v, want %v", err, tt.err)
			}
			if err != nil {
				// Read's contract: an error, and no description.
				if d != nil || !strings.Contains(err.Error(), "oci-archive:") {
					t.Errorf("Read() = %+v, %v; want no description and the image named", d, err)
				}
				d, err = describeBytes(t, ociArchive(t, tt.labels))
				if err != nil || !errors.Is(d.SeedErr, tt.err) {
					t.Fatalf("Describe() = %+v, %v; want a description with SeedErr %v", d, err, tt.err)
				}
			}
			if d.Kind != tt.kind || d.Architecture != "amd64" || d.LayerCount != 0 {
				t.Errorf("Read() = %+v, want kind %s", d, tt.kind)
			}
		})
	}
}

// FuzzReadArchive feeds arbitrary bytes to the archive reading path: it
// must answer with an error or a description, never a panic.
func FuzzReadArchive(f *testing.F) {
	f.Add(ociArchive(f, `{"com.openshift.lifecycle-agent.seed_format_version":"5"}`))
	f.Add(ociArchive(f, `{"com.openshift.lifecycle-agent.seed_format_version":"4","com.openshift.lifecycle-agent.seed_cluster_info":"{\"a\":"}`))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := readBytes(t, data)
		if err == nil && d == nil {
			t.Fatal("Read() returned neither a description nor an error")
		}
	})
}

func TestMain(m *testing.M) {
	// containers/image may re-execute the test binary to unpack archives.
	if reexec.Init() {
		return
	}
	os.Exit(m.Run())
}
