package builder

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"go.podman.io/storage"
	"go.podman.io/storage/pkg/archive"
	"go.podman.io/storage/pkg/reexec"
	"golang.org/x/sys/unix"
)

// stagedTestLayer is a layer's tar stream with an entry of every kind a
// layer can hold, a file too big for the unpacker's workers, and padding
// after the tar's end.
func stagedTestLayer(t *testing.T) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	mtime := time.Unix(1_700_000_000, 0)
	add := func(h tar.Header, data []byte) {
		h.ModTime, h.Format, h.Size = mtime, tar.FormatPAX, int64(len(data))
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		must(t, tw.WriteHeader(&h))
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 20<<20/16)
	add(tar.Header{Name: "var/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(tar.Header{Name: "var/lib/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 5, Gid: 6}, nil)
	add(tar.Header{Name: "var/lib/f", Mode: 0o4750, Uid: 5, Gid: 6, PAXRecords: map[string]string{"SCHILY.xattr.user.seedbuild-test": "v"}}, []byte("content"))
	add(tar.Header{Name: "var/lib/empty", Mode: 0o600}, nil)
	add(tar.Header{Name: "var/big", Mode: 0o644}, big)
	// A link entry has its file's metadata, as tar (and the capture) write it.
	add(tar.Header{Name: "var/link", Typeflag: tar.TypeLink, Linkname: "var/lib/f", Mode: 0o4750, Uid: 5, Gid: 6}, nil)
	add(tar.Header{Name: "var/sym", Typeflag: tar.TypeSymlink, Linkname: "lib/f", Mode: 0o777}, nil)
	add(tar.Header{Name: "var/fifo", Typeflag: tar.TypeFifo, Mode: 0o600}, nil)
	add(tar.Header{Name: "var/.wh.gone", Mode: 0o600, Uid: 3, Gid: 3}, nil)
	add(tar.Header{Name: "var/hidden/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	add(tar.Header{Name: "var/hidden/.wh..wh..opq", Mode: 0o600}, nil)
	must(t, tw.Close())
	b.Write(make([]byte, 8192))
	return b.Bytes()
}

func TestMain(m *testing.M) {
	// containers-storage re-executes the test binary to unpack a layer
	// put with PutLayer.
	if reexec.Init() {
		return
	}
	os.Exit(m.Run())
}

func testStore(t *testing.T, driver string) storage.Store {
	t.Helper()
	dir := t.TempDir()
	store, err := storage.GetStore(storage.StoreOptions{RunRoot: filepath.Join(dir, "run"), GraphRoot: filepath.Join(dir, "graph"), GraphDriverName: driver})
	if err != nil {
		t.Skipf("skipped: no %s store here: %v", driver, err)
	}
	t.Cleanup(func() { _, _ = store.Shutdown(true) })
	return store
}

// TestPutStagedLayerMatchesPutLayer stores one stream both ways in an
// overlay store, as a tar stream and as a gzip blob: the layers must have
// the same digests, size and owners, diffs alike on disk, and give the
// stream back byte for byte.
func TestPutStagedLayerMatchesPutLayer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, for an overlay store (make test runs as root)")
	}
	layer := stagedTestLayer(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(layer)
	must(t, zw.Close())
	for _, c := range []struct {
		name       string
		blob       []byte
		compressed bool
		id         string
	}{
		{"tar stream", layer, false, ""},
		{"gzip blob", gz.Bytes(), true, strings.Repeat("ab", 32)},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := testStore(t, "overlay")
			plain, _, err := store.PutLayer("", "", nil, "", false, nil, bytes.NewReader(c.blob))
			if err != nil {
				t.Fatalf("PutLayer() = %v", err)
			}
			staged, err := putStagedLayer(context.Background(), store, c.id, "", bytes.NewReader(c.blob), c.compressed)
			if err != nil {
				t.Fatalf("putStagedLayer() = %v", err)
			}
			if c.id != "" && staged.ID != c.id {
				t.Errorf("putStagedLayer() made layer %s, want %s", staged.ID, c.id)
			}
			want := digest.FromBytes(layer)
			for _, l := range []*storage.Layer{plain, staged} {
				if l.UncompressedDigest != want || l.UncompressedSize != int64(len(layer)) || l.CompressedDigest != digest.FromBytes(c.blob) {
					t.Errorf("layer %s: digests %s and %s, size %d; want %s and %s, %d", l.ID, l.UncompressedDigest, l.CompressedDigest, l.UncompressedSize,
						want, digest.FromBytes(c.blob), len(layer))
				}
			}
			if fmt.Sprint(plain.UIDs, plain.GIDs) != fmt.Sprint(staged.UIDs, staged.GIDs) {
				t.Errorf("owners: staged %v %v, PutLayer %v %v", staged.UIDs, staged.GIDs, plain.UIDs, plain.GIDs)
			}
			diffDir := func(l *storage.Layer) string {
				return filepath.Join(store.GraphRoot(), "overlay", l.ID, "diff")
			}
			if got, want := treeOf(t, diffDir(staged)), treeOf(t, diffDir(plain)); got != want {
				t.Errorf("the staged layer's diff differs from PutLayer's:\n%s\nwant\n%s", got, want)
			}
			rc, err := store.Diff("", staged.ID, &storage.DiffOptions{Compression: ptrTo(archive.Uncompressed)})
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			back, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, layer) {
				t.Errorf("the staged layer's diff gives %d bytes (%s), not the %d stored (%s)", len(back), digest.FromBytes(back), len(layer), want)
			}
		})
	}
}

// TestPutStagedLayerRefusesOtherDrivers: a driver without staged layers
// gets errNoStagedLayer, with nothing of the stream read, so that the
// caller can still give it to PutLayer.
func TestPutStagedLayerRefusesOtherDrivers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: needs root, as a store does (make test runs as root)")
	}
	store := testStore(t, "vfs")
	r := bytes.NewReader(stagedTestLayer(t))
	if _, err := putStagedLayer(context.Background(), store, "", "", r, false); !errors.Is(err, errNoStagedLayer) {
		t.Fatalf("putStagedLayer() on vfs = %v, want errNoStagedLayer", err)
	}
	if r.Len() != int(r.Size()) {
		t.Errorf("putStagedLayer() read %d bytes before refusing", int(r.Size())-r.Len())
	}
}

// treeOf describes every path under root: type, mode, owner, device,
// times, xattrs and content digest.
func treeOf(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		line := fmt.Sprintf("%s mode=%o uid=%d gid=%d rdev=%d size=%d links=%d", rel, st.Mode, st.Uid, st.Gid, st.Rdev, st.Size, st.Nlink)
		// Folders' times change as what is in them is made, and whiteouts
		// get the time they were made.
		if k := st.Mode & unix.S_IFMT; k != unix.S_IFDIR && k != unix.S_IFCHR {
			line += fmt.Sprintf(" mtime=%d", st.Mtim.Sec)
		}
		line += " xattrs=" + xattrsOf(t, p)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" sha256=%x", sha256.Sum256(data))
		case unix.S_IFLNK:
			target, _ := os.Readlink(p)
			line += " -> " + target
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func xattrsOf(t *testing.T, p string) string {
	t.Helper()
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("listing the xattrs of %s: %v", p, err)
	}
	var out []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" || name == "security.selinux" {
			continue
		}
		v := make([]byte, 4096)
		m, err := unix.Lgetxattr(p, name, v)
		if err != nil {
			t.Fatalf("reading the xattr %s of %s: %v", name, p, err)
		}
		out = append(out, name+"="+string(v[:m]))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func ptrTo[T any](v T) *T { return &v }
