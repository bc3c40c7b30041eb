// Package localimage gets images into local containers-storage and mounts
// them through storage containers of seedbuild's own, which a later run
// removes when the run that made them was killed. An image pulled only for
// the mount can be taken out of the store again when the mount is released
// (Source.Transient), leaving the store's images and names as they were.
package localimage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
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
// messages and for naming a pulled image that has no name of its own. For
// a Transient source it also returns what the pull changed in the store
// (nil when nothing), so that it can be taken back.
func ensure(ctx context.Context, store storage.Store, s Source) (types.ImageReference, string, *pull, error) {
	ref, d := s.Ref, s.Description
	if ref.Transport().Name() == istorage.Transport.Name() {
		_, img, err := istorage.ResolveReference(ref)
		if err != nil {
			return nil, "", nil, fmt.Errorf("finding %q in local storage: %w", d.Image, err)
		}
		return ref, img.ID, nil, nil
	}
	name := "localhost/seedbuild-seed:" + strings.TrimPrefix(d.Digest, "sha256:")[:16]
	if named := ref.DockerReference(); named != nil {
		name = named.String()
	}
	dest, err := istorage.Transport.ParseStoreReference(store, name)
	if err != nil {
		return nil, "", nil, fmt.Errorf("naming the local copy of %q: %w", d.Image, err)
	}
	var before []storage.Image
	if s.Transient {
		if before, err = store.Images(); err != nil {
			return nil, "", nil, fmt.Errorf("listing the images in local storage: %w", err)
		}
	}
	fmt.Fprintf(s.Progress, "Pulling %s into local storage as %s\n", d.Image, name)
	opts := &copy.Options{SourceCtx: s.SystemContext, DestinationCtx: s.SystemContext, ReportWriter: s.Progress}
	if _, err := imageref.CopyImage(ctx, s.Policy, dest, ref, opts, s.Retry); err != nil {
		return nil, "", nil, fmt.Errorf("pulling %q: %w", d.Image, err)
	}
	_, img, err := istorage.ResolveReference(dest)
	if err != nil {
		return nil, "", nil, fmt.Errorf("finding the pulled %q: %w", name, err)
	}
	var p *pull
	if s.Transient {
		p = newPull(img.ID, name, before)
	}
	return dest, img.ID, p, nil
}

// pull is what a pull changed in the store, so that it can be taken back:
// it gave the image ID the name Name.
type pull struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Existed says the image was in the store before, under other names.
	Existed bool `json:"existed,omitempty"`
	// Holder is the image that held Name before the pull, if another.
	Holder string `json:"holder,omitempty"`
}

// newPull records the pull of image id under name into a store that held
// the images before; nil when the store held it under that name already,
// and the pull changed nothing.
func newPull(id, name string, before []storage.Image) *pull {
	p := &pull{ID: id, Name: name}
	for _, img := range before {
		if img.ID == id {
			if slices.Contains(img.Names, name) {
				return nil
			}
			p.Existed = true
		} else if slices.Contains(img.Names, name) {
			p.Holder = img.ID
		}
	}
	return p
}

// Undone is what taking a pull back did.
type Undone struct {
	// Name is the name the pull gave image ID.
	Name, ID string
	// Deleted says the image was deleted (with the layers no other image
	// uses); otherwise only Name was taken off it, since it was in the
	// store before the pull, or has been given other names since.
	Deleted bool
}

func (u Undone) String() string {
	if u.Deleted {
		return fmt.Sprintf("image %s (%s)", u.Name, shortID(u.ID))
	}
	return fmt.Sprintf("the name %s (image %s stays)", u.Name, shortID(u.ID))
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// undo takes the pull back, and only the pull: it takes the name it gave
// off the image, and deletes the image when the pull brought it and
// nothing has named it since. A name the pull took from another image
// goes back to it.
func (p *pull) undo(store storage.Store) (Undone, error) {
	u := Undone{Name: p.Name, ID: p.ID}
	img, err := store.Image(p.ID)
	switch {
	case errors.Is(err, storage.ErrImageUnknown):
		// Removed by someone else already.
	case err != nil:
		return u, fmt.Errorf("finding image %s: %w", p.ID, err)
	case !p.Existed && !slices.ContainsFunc(img.Names, func(n string) bool { return n != p.Name }):
		if _, err := store.DeleteImage(p.ID, true); err != nil {
			return u, fmt.Errorf("removing image %s (%s): %w; remove it with podman rmi %s once nothing uses it", p.Name, shortID(p.ID), err, shortID(p.ID))
		}
		u.Deleted = true
	case slices.Contains(img.Names, p.Name):
		if err := store.RemoveNames(p.ID, []string{p.Name}); err != nil {
			return u, fmt.Errorf("taking the name %s off image %s: %w", p.Name, shortID(p.ID), err)
		}
	}
	if p.Holder != "" {
		if _, err := store.Image(p.Holder); err == nil {
			if err := store.AddNames(p.Holder, []string{p.Name}); err != nil {
				return u, fmt.Errorf("giving the name %s back to image %s: %w", p.Name, shortID(p.Holder), err)
			}
		}
	}
	return u, nil
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
	// Transient asks for what EnsureMounted's pull did to be taken back
	// when the image is released (see pull.undo). A run killed before
	// then has it taken back by RemoveStaleContainers.
	Transient bool
}

// EnsureMounted is the one way seedbuild mounts an image (a seed for
// deploy, any image for lint): pulled into store when it is not there,
// then mounted. The Mounted's Ref and ImageID name the local copy.
func EnsureMounted(ctx context.Context, store storage.Store, s Source) (*Mounted, error) {
	local, id, p, err := ensure(ctx, store, s)
	if err != nil {
		return nil, err
	}
	// The pull is recorded with the mount's container, which a later run
	// finds if this one is killed.
	m, err := mount(store, id, p)
	if err != nil {
		if p != nil {
			_, uerr := p.undo(store)
			err = errors.Join(err, uerr)
		}
		return nil, err
	}
	m.Ref, m.ImageID, m.pull = local, id, p
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
	// pull is the pull that Release takes back (Source.Transient), or nil.
	pull *pull
	// Path is where the image's root filesystem is.
	Path string
}

// mountRecord is the metadata of a mount's container.
type mountRecord struct {
	PID int `json:"pid"`
	// Stamp names the run across reboots (scratch.Stamp): after a power
	// cut its pid may be another process's. Older runs wrote only PID.
	Stamp string `json:"stamp,omitempty"`
	// Pull is the pull to take back with the container, or nil.
	Pull *pull `json:"pull,omitempty"`
}

// alive says whether the run that made the container still runs.
func (r mountRecord) alive() bool {
	stamp := r.Stamp
	if stamp == "" {
		stamp = strconv.Itoa(r.PID)
	}
	_, alive := scratch.StampAlive(stamp)
	return alive
}

// mount mounts the image's root filesystem.
func mount(store storage.Store, imageID string, p *pull) (*Mounted, error) {
	var b [6]byte
	rand.Read(b[:])
	meta, err := json.Marshal(mountRecord{PID: os.Getpid(), Stamp: scratch.Stamp(), Pull: p})
	if err != nil {
		return nil, err
	}
	c, err := store.CreateContainer("", []string{containerPrefix + hex.EncodeToString(b[:])}, imageID, "", string(meta), nil)
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

// Release unmounts the image and removes its container, and takes back
// the pull of a Transient source. It says what it took back (nil for
// nothing).
func (m *Mounted) Release() (*Undone, error) {
	if _, err := m.store.Unmount(m.containerID, true); err != nil {
		return nil, fmt.Errorf("unmounting the image: %w", err)
	}
	if err := m.store.DeleteContainer(m.containerID); err != nil {
		return nil, fmt.Errorf("removing the image's container: %w", err)
	}
	if m.pull == nil {
		return nil, nil
	}
	u, err := m.pull.undo(m.store)
	if err != nil {
		return nil, fmt.Errorf("taking the pulled image out of local storage again: %w", err)
	}
	return &u, nil
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
			var meta mountRecord
			if json.Unmarshal([]byte(c.Metadata), &meta) == nil && meta.alive() {
				continue
			}
			store.Unmount(c.ID, true)
			if err := store.DeleteContainer(c.ID); err != nil {
				continue
			}
			fmt.Fprintf(w, "Removed container %s, left by an interrupted seedbuild run\n", n)
			if meta.Pull == nil {
				continue
			}
			if u, err := meta.Pull.undo(store); err != nil {
				fmt.Fprintf(w, "Warning: taking back the pull of an interrupted seedbuild run: %v\n", err)
			} else {
				fmt.Fprintf(w, "Took %s out of local storage: an interrupted seedbuild run pulled it\n", u)
			}
		}
	}
}
