// Package localimage gets images into local containers-storage and mounts
// them through storage containers of seedbuild's own, which a later run
// removes when the run that made them was killed.
package localimage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/seedbuild/seedbuild/imageref"
	"github.com/seedbuild/seedbuild/internal/scratch"
	"github.com/seedbuild/seedbuild/seedimage"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/signature"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// containerPrefix names the storage containers seedbuild makes to mount an
// image, so a later run can remove what a killed run left.
const containerPrefix = "seedbuild-mount-"

// ensure makes sure the image is in store, pulling it when it is not, and
// returns its storage reference and ID. d is the image's description, for
// messages and for naming a pulled image that has no name of its own.
func ensure(ctx context.Context, store storage.Store, ref types.ImageReference, d *seedimage.Description,
	sys *types.SystemContext, pc *signature.PolicyContext, r imageref.Retry, progress io.Writer) (types.ImageReference, string, error) {
	if ref.Transport().Name() == istorage.Transport.Name() {
		img, err := istorage.Transport.GetStoreImage(store, ref)
		if err != nil {
			return nil, "", fmt.Errorf("finding %q in local storage: %w", d.Image, err)
		}
		return ref, img.ID, nil
	}
	name := "localhost/seedbuild-seed:" + strings.TrimPrefix(d.Digest, "sha256:")[:16]
	if named := ref.DockerReference(); named != nil {
		name = named.String()
	}
	dest, err := istorage.Transport.ParseStoreReference(store, name)
	if err != nil {
		return nil, "", fmt.Errorf("naming the local copy of %q: %w", d.Image, err)
	}
	fmt.Fprintf(progress, "Pulling %s into local storage as %s\n", d.Image, name)
	if _, err := imageref.CopyImage(ctx, pc, dest, ref, &copy.Options{SourceCtx: sys, DestinationCtx: sys, ReportWriter: progress}, r); err != nil {
		return nil, "", fmt.Errorf("pulling %q: %w", d.Image, err)
	}
	img, err := istorage.Transport.GetStoreImage(store, dest)
	if err != nil {
		return nil, "", fmt.Errorf("finding the pulled %q: %w", name, err)
	}
	return dest, img.ID, nil
}

// Source is an image to mount: where it is, what it is, and how to pull it
// when it is not in local storage.
type Source struct {
	Ref           types.ImageReference
	Description   *seedimage.Description
	SystemContext *types.SystemContext
	Policy        *signature.PolicyContext
	Retry         imageref.Retry
	// Progress receives the pull's progress.
	Progress io.Writer
}

// EnsureMounted is the one way seedbuild mounts an image (a seed for
// deploy, any image for lint): pulled into store when it is not there,
// then mounted. The Mounted's Ref and ImageID name the local copy.
func EnsureMounted(ctx context.Context, store storage.Store, s Source) (*Mounted, error) {
	local, id, err := ensure(ctx, store, s.Ref, s.Description, s.SystemContext, s.Policy, s.Retry, s.Progress)
	if err != nil {
		return nil, err
	}
	m, err := mount(store, id)
	if err != nil {
		return nil, err
	}
	m.Ref, m.ImageID = local, id
	return m, nil
}

// Mounted is an image mounted through a storage container of its own.
type Mounted struct {
	// Ref and ImageID name the image in local storage (set by
	// EnsureMounted).
	Ref         types.ImageReference
	ImageID     string
	store       storage.Store
	containerID string
	// Path is where the image's root filesystem is.
	Path string
}

// mount mounts the image's root filesystem.
func mount(store storage.Store, imageID string) (*Mounted, error) {
	var b [6]byte
	rand.Read(b[:])
	meta := fmt.Sprintf(`{"pid":%d}`, os.Getpid())
	c, err := store.CreateContainer("", []string{containerPrefix + hex.EncodeToString(b[:])}, imageID, "", meta, nil)
	if err != nil {
		return nil, fmt.Errorf("making a container to mount image %s: %w", imageID, err)
	}
	mnt, err := store.Mount(c.ID, "")
	if err != nil {
		store.DeleteContainer(c.ID)
		return nil, fmt.Errorf("mounting image %s: %w", imageID, err)
	}
	return &Mounted{store: store, containerID: c.ID, Path: mnt}, nil
}

// Release unmounts the image and removes its container.
func (m *Mounted) Release() error {
	if _, err := m.store.Unmount(m.containerID, true); err != nil {
		return fmt.Errorf("unmounting the image: %w", err)
	}
	if err := m.store.DeleteContainer(m.containerID); err != nil {
		return fmt.Errorf("removing the image's container: %w", err)
	}
	return nil
}

// RemoveStaleContainers removes the mount containers of seedbuild runs
// that were killed, and says so on w.
func RemoveStaleContainers(store storage.Store, w io.Writer) {
	list, err := store.Containers()
	if err != nil {
		return
	}
	for _, c := range list {
		for _, n := range c.Names {
			if !strings.HasPrefix(n, containerPrefix) {
				continue
			}
			var meta struct {
				PID int `json:"pid"`
			}
			if json.Unmarshal([]byte(c.Metadata), &meta) == nil && meta.PID > 0 && scratch.Alive(meta.PID) {
				continue
			}
			store.Unmount(c.ID, true)
			if err := store.DeleteContainer(c.ID); err == nil {
				fmt.Fprintf(w, "Removed container %s, left by an interrupted seedbuild run\n", n)
			}
		}
	}
}
