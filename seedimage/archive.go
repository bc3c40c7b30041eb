package seedimage

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/types"
)

// errNotInPlace says an oci-archive cannot be read in place (a manifest
// list, say), so it is read through containers/image, which extracts it.
var errNotInPlace = errors.New("the archive cannot be read in place")

// archiveBlobs reads an oci-archive's blobs where they are in the tar:
// its members are found once, skipping their data by seeking, and each
// blob is then a section of the file. containers/image's oci-archive
// transport first extracts the whole archive into a temporary folder,
// which writes every compressed byte once more.
type archiveBlobs struct {
	f       *os.File
	members map[string]*io.SectionReader
}

func openArchiveBlobs(path string) (*archiveBlobs, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	a := &archiveBlobs{f: f, members: map[string]*io.SectionReader{}}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return a, nil
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("reading the archive %q: %w", path, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		// archive/tar reads headers block by block from the file itself,
		// so the file's offset is now where this member's data starts.
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			f.Close()
			return nil, err
		}
		a.members[strings.TrimPrefix(h.Name, "./")] = io.NewSectionReader(f, off, h.Size)
	}
}

func (a *archiveBlobs) Close() error { return a.f.Close() }

func (a *archiveBlobs) readJSON(name string, v any) error {
	r, ok := a.members[name]
	if !ok {
		return fmt.Errorf("the archive has no %s", name)
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return err
	}
	return json.NewDecoder(r).Decode(v)
}

func (a *archiveBlobs) blob(d digest.Digest) (*io.SectionReader, error) {
	r, ok := a.members["blobs/"+d.Algorithm().String()+"/"+d.Encoded()]
	if !ok {
		return nil, fmt.Errorf("the archive has no blob %s", d)
	}
	return io.NewSectionReader(r, 0, r.Size()), nil
}

// manifest reads the image's manifest: the one named name (its
// org.opencontainers.image.ref.name), or the only one when name is "".
// An archive that holds no such single OCI manifest is errNotInPlace.
func (a *archiveBlobs) manifest(name string) ([]byte, error) {
	var index imgspecv1.Index
	if err := a.readJSON("index.json", &index); err != nil {
		return nil, err
	}
	var picked []imgspecv1.Descriptor
	for _, m := range index.Manifests {
		if name == "" || m.Annotations[imgspecv1.AnnotationRefName] == name {
			picked = append(picked, m)
		}
	}
	if len(picked) != 1 || picked[0].MediaType != imgspecv1.MediaTypeImageManifest {
		return nil, errNotInPlace
	}
	r, err := a.blob(picked[0].Digest)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading manifest %s: %w", picked[0].Digest, err)
	}
	return data, nil
}

// NewSource opens ref's image for reading: an oci-archive that holds one
// OCI image is read in place (its blobs are sections of the file); any
// other image through its transport.
func NewSource(ctx context.Context, ref types.ImageReference, sys *types.SystemContext) (types.ImageSource, error) {
	if ref.Transport().Name() == "oci-archive" {
		src, err := openArchiveSource(ref)
		if err == nil {
			return src, nil
		}
		if !errors.Is(err, errNotInPlace) {
			return nil, err
		}
	}
	return ref.NewImageSource(ctx, sys)
}

// archiveSource is a types.ImageSource over an oci-archive read in place.
type archiveSource struct {
	ref      types.ImageReference
	a        *archiveBlobs
	manifest []byte
}

func openArchiveSource(ref types.ImageReference) (*archiveSource, error) {
	path, name, _ := strings.Cut(ref.StringWithinTransport(), ":")
	a, err := openArchiveBlobs(path)
	if err != nil {
		return nil, err
	}
	data, err := a.manifest(name)
	if err != nil {
		a.Close()
		return nil, err
	}
	return &archiveSource{ref: ref, a: a, manifest: data}, nil
}

func (s *archiveSource) Reference() types.ImageReference { return s.ref }
func (s *archiveSource) Close() error                    { return s.a.Close() }
func (s *archiveSource) GetManifest(_ context.Context, instance *digest.Digest) ([]byte, string, error) {
	if instance != nil {
		return nil, "", fmt.Errorf("the archive holds one image, not instance %s", instance)
	}
	return s.manifest, imgspecv1.MediaTypeImageManifest, nil
}
func (s *archiveSource) GetBlob(_ context.Context, info types.BlobInfo, _ types.BlobInfoCache) (io.ReadCloser, int64, error) {
	r, err := s.a.blob(info.Digest)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(r), r.Size(), nil
}
func (s *archiveSource) HasThreadSafeGetBlob() bool { return true }
func (s *archiveSource) GetSignatures(context.Context, *digest.Digest) ([][]byte, error) {
	return nil, nil
}
func (s *archiveSource) LayerInfosForCopy(context.Context, *digest.Digest) ([]types.BlobInfo, error) {
	return nil, nil
}
