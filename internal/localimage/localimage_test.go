package localimage

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	imgspec "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/seedbuild/seedbuild/internal/scratch"
	"github.com/seedbuild/seedbuild/seedimage"
	"go.podman.io/image/v5/copy"
	ocilayout "go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/signature"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
	"go.podman.io/storage/pkg/reexec"
)

func TestMain(m *testing.M) {
	if reexec.Init() {
		return
	}
	os.Exit(m.Run())
}

// testStore is a vfs store in a temp folder.
func testStore(t *testing.T) storage.Store {
	t.Helper()
	dir := t.TempDir()
	store, err := storage.GetStore(storage.StoreOptions{RunRoot: filepath.Join(dir, "run"), GraphRoot: filepath.Join(dir, "graph"), GraphDriverName: "vfs"})
	if err != nil {
		t.Fatalf("making a vfs store: %v", err)
	}
	t.Cleanup(func() { store.Shutdown(true) })
	return store
}

// ociImage writes an OCI layout holding one image of one layer, a file
// with the given content, and returns a reference to it.
func ociImage(t *testing.T, content string) types.ImageReference {
	t.Helper()
	dir := t.TempDir()
	blob := func(data []byte) v1.Descriptor {
		d := digest.FromBytes(data)
		p := filepath.Join(dir, "blobs", "sha256", d.Encoded())
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return v1.Descriptor{Digest: d, Size: int64(len(data))}
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))})
	io.WriteString(tw, content)
	tw.Close()
	ld := blob(layer.Bytes())
	ld.MediaType = v1.MediaTypeImageLayer
	config, _ := json.Marshal(v1.Image{Platform: v1.Platform{OS: "linux", Architecture: "amd64"},
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []digest.Digest{ld.Digest}}})
	cd := blob(config)
	cd.MediaType = v1.MediaTypeImageConfig
	man, _ := json.Marshal(v1.Manifest{Versioned: imgspec.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest, Config: cd, Layers: []v1.Descriptor{ld}})
	md := blob(man)
	md.MediaType = v1.MediaTypeImageManifest
	index, _ := json.Marshal(v1.Index{Versioned: imgspec.Versioned{SchemaVersion: 2}, Manifests: []v1.Descriptor{md}})
	os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	ref, err := ocilayout.NewReference(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// images lists the store's images and their names, one line each.
func images(t *testing.T, store storage.Store) string {
	t.Helper()
	list, err := store.Images()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, img := range list {
		names := slices.Clone(img.Names)
		sort.Strings(names)
		lines = append(lines, img.ID[:12]+" "+strings.Join(names, ","))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// pullTo copies ref into store under name, as a user's pull would.
func pullTo(t *testing.T, store storage.Store, ref types.ImageReference, name string) {
	t.Helper()
	dest, err := istorage.Transport.ParseStoreReference(store, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := copy.Image(context.Background(), policy(t), dest, ref, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := istorage.ResolveReference(dest); err != nil {
		t.Fatalf("%s is not in the store after its pull: %v", name, err)
	}
}

func policy(t *testing.T) *signature.PolicyContext {
	pc, err := signature.NewPolicyContext(&signature.Policy{Default: []signature.PolicyRequirement{signature.NewPRInsecureAcceptAnything()}})
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// TestTransientPullIsTakenBack mounts an image from an OCI layout, which
// is pulled into the store, and releases it: a transient source takes back
// what the pull did and only that (the store's images and names as they
// were, but for names given since); a kept one leaves the pulled image;
// a killed run's pull is taken back by the next run's
// RemoveStaleContainers; an image still in use stays, with an error that
// says how to remove it.
func TestTransientPullIsTakenBack(t *testing.T) {
	digestName := func(ref types.ImageReference) string {
		d, err := seedimage.Describe(context.Background(), ref, nil)
		if err != nil {
			t.Fatal(err)
		}
		return "localhost/seedbuild-seed:" + strings.TrimPrefix(d.Digest, "sha256:")[:16]
	}
	const theirs = "localhost/theirs:1"
	for _, c := range []struct {
		name string
		// before fills the store before the mount; during changes it while
		// the image is mounted.
		before    func(t *testing.T, store storage.Store, seed types.ImageReference)
		during    func(t *testing.T, store storage.Store, id string)
		transient bool
		// killed, when set, makes the mount look left by a run that
		// ended: it gives the pid and stamp to record.
		killed func() (int, string)
		// undone is what Release says it took back: "" for nothing,
		// "deleted" for the image, "name" for only its name.
		undone string
		// wantErr is in Release's error, if it must fail.
		wantErr string
		// after is the image list wanted after the release, from the one
		// before the mount and the one after during; default: as before
		// the mount.
		after func(before, during string) string
	}{
		{name: "not there before", transient: true, undone: "deleted"},
		{name: "there before under another name", transient: true, undone: "name", before: func(t *testing.T, store storage.Store, seed types.ImageReference) {
			pullTo(t, store, seed, "localhost/mine:1")
		}},
		{name: "there before with no name", transient: true, undone: "name", before: func(t *testing.T, store storage.Store, seed types.ImageReference) {
			pullTo(t, store, seed, "localhost/mine:1")
			if err := store.RemoveNames(imageID(t, store, "localhost/mine:1"), []string{"localhost/mine:1"}); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "there before under its name", transient: true, before: func(t *testing.T, store storage.Store, seed types.ImageReference) {
			pullTo(t, store, seed, digestName(seed))
		}},
		{name: "its name on another image before", transient: true, undone: "deleted", before: func(t *testing.T, store storage.Store, seed types.ImageReference) {
			pullTo(t, store, ociImage(t, "other"), digestName(seed))
		}},
		{name: "named by someone else since", transient: true, undone: "name",
			during: func(t *testing.T, store storage.Store, id string) {
				if err := store.AddNames(id, []string{theirs}); err != nil {
					t.Fatal(err)
				}
			},
			after: func(_, during string) string {
				return strings.Replace(during, digestName(ociImage(t, "seed"))+",", "", 1)
			}},
		{name: "in use by another container", transient: true, wantErr: "podman rmi",
			during: func(t *testing.T, store storage.Store, id string) {
				if _, err := store.CreateContainer("", []string{"someone-elses"}, id, "", "", nil); err != nil {
					t.Fatal(err)
				}
			},
			after: func(_, during string) string { return during }},
		{name: "kept", transient: false, after: func(_, during string) string { return during }},
		{name: "killed run", transient: true, killed: func() (int, string) {
			pid := deadPID(t)
			return pid, fmt.Sprintf("%d %s", pid, scratch.BootID())
		}},
		// After a power cut, its pid may be a live process's.
		{name: "run of an earlier boot", transient: true, killed: func() (int, string) {
			return os.Getpid(), fmt.Sprintf("%d 00000000", os.Getpid())
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := testStore(t)
			pullTo(t, store, ociImage(t, "unrelated"), "localhost/unrelated:1")
			seed := ociImage(t, "seed")
			if c.before != nil {
				c.before(t, store, seed)
			}
			before := images(t, store)
			d, err := seedimage.Describe(context.Background(), seed, nil)
			if err != nil {
				t.Fatal(err)
			}
			m, err := EnsureMounted(context.Background(), store, Source{Ref: seed, Description: d, Policy: policy(t), Progress: io.Discard, Transient: c.transient})
			if err != nil {
				t.Fatal(err)
			}
			if data, err := os.ReadFile(filepath.Join(m.Path, "f")); err != nil || string(data) != "seed" {
				t.Fatalf("the mounted seed's f = %q (%v), want seed", data, err)
			}
			if c.during != nil {
				c.during(t, store, m.ImageID)
			}
			during := images(t, store)
			if c.killed != nil {
				// As a killed run leaves it: the container, its metadata
				// naming a run that ended.
				ctr, err := store.Container(m.containerID)
				if err != nil {
					t.Fatal(err)
				}
				var rec mountRecord
				json.Unmarshal([]byte(ctr.Metadata), &rec)
				if rec.Pull == nil || rec.Stamp != scratch.Stamp() {
					t.Fatalf("the mount container's metadata %s records no pull, or not this run's stamp", ctr.Metadata)
				}
				rec.PID, rec.Stamp = c.killed()
				meta, _ := json.Marshal(rec)
				if err := store.SetMetadata(m.containerID, string(meta)); err != nil {
					t.Fatal(err)
				}
				var out bytes.Buffer
				RemoveStaleContainers(store, &out)
				if !strings.Contains(out.String(), "Took image "+digestName(seed)) {
					t.Errorf("RemoveStaleContainers said %q, want it to say it took the image out", out.String())
				}
			} else {
				undone, err := m.Release()
				switch {
				case c.wantErr != "":
					if err == nil || !strings.Contains(err.Error(), c.wantErr) {
						t.Errorf("Release: %v, want an error that says %q", err, c.wantErr)
					}
				case err != nil:
					t.Fatal(err)
				}
				got := ""
				if undone != nil {
					got = map[bool]string{true: "deleted", false: "name"}[undone.Deleted]
				}
				if got != c.undone {
					t.Errorf("Release took back %v (%q), want %q", undone, got, c.undone)
				}
			}
			want := before
			if c.after != nil {
				want = c.after(before, during)
			}
			if got := images(t, store); got != want {
				t.Errorf("images after the release:\n%s\nwant:\n%s\n(before the mount:\n%s)", got, want, before)
			}
		})
	}
}

// imageID is the ID of the image named name in store.
func imageID(t *testing.T, store storage.Store, name string) string {
	t.Helper()
	img, err := store.Image(name)
	if err != nil {
		t.Fatal(err)
	}
	return img.ID
}

// deadPID is the pid of a process that has ended.
func deadPID(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Fatal(err)
	}
	p.Wait()
	return p.Pid
}
