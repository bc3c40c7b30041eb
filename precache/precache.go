// Package precache pulls a seed's workload images into the node's
// container store before the node reboots into the seed's stateroot, as
// the upstream lifecycle agent does (internal/precache), so the new
// cluster finds them there. Unlike the agent's `podman pull` of each image,
// ten at a time, it fetches each blob once: images that share layers wait
// for the one fetching a shared layer instead of fetching it too (see
// claims), and a layer already in the store is not fetched.
package precache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/seedbuild/seedbuild/internal/scratch"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage"
)

// Options say where to pull to and how.
type Options struct {
	// Store is the node's containers-storage. Required.
	Store storage.Store
	// SystemContext carries the auth file, registries.conf (mirrors) and
	// the platform; nil is the defaults.
	SystemContext *types.SystemContext
	// Policy is the signature policy. Required.
	Policy *signature.PolicyContext
	// Jobs is how many images are pulled at once; 0 means DefaultJobs().
	Jobs int
	// Tries is how often a pull is tried before it fails; 0 means 5, as
	// the agent does. A "manifest unknown" is not tried again.
	Tries int
	// RetryDelay is the wait before the second try, doubled for each one
	// after; 0 means 2 s.
	RetryDelay time.Duration
	// BestEffort goes on after an image fails; without it the first
	// failure stops the run (what was pulled stays).
	BestEffort bool
	// Rewrite, when set, rewrites each image name before it is pulled
	// (the agent's override of the seed's registry).
	Rewrite func(string) (string, error)
	// TempDir holds the blobs being fetched. Default /var/tmp.
	TempDir string
	// Progress receives progress lines; nil for none.
	Progress io.Writer
	// Events, when set, receives each image's outcome as it is known.
	Events func(ImageStatus)
}

// DefaultJobs is the default of Options.Jobs: two pulls per core, at
// least 4 and at most 10 (the agent's MAX_PULL_THREADS). A pull mostly
// waits on the network and the disk; a shared layer is fetched once
// whatever the count.
func DefaultJobs() int { return min(10, max(4, 2*runtime.NumCPU())) }

// The outcomes of an image.
const (
	// Pulled: the image is in the store now.
	Pulled = "pulled"
	// Present: it was in the store already.
	Present = "present"
	// Skipped: it is for another platform; nothing was fetched.
	Skipped = "skipped"
	// Failed: it could not be pulled.
	Failed = "failed"
)

// ImageStatus is what became of one image.
type ImageStatus struct {
	Image  string `json:"image"`
	Status string `json:"status"`
	// Reason says why an image was skipped or failed.
	Reason string `json:"reason,omitempty"`
	// Bytes is what its pull fetched of the blobs no other image fetched.
	Bytes int64 `json:"bytes,omitempty"`
}

// Status is a run's outcome, the agent's precache status (total, pulled,
// failed) with skipped images and each image's status.
type Status struct {
	Total   int           `json:"total"`
	Pulled  int           `json:"pulled"`
	Present int           `json:"present"`
	Failed  int           `json:"failed"`
	Skipped int           `json:"skipped"`
	Bytes   int64         `json:"bytes"`
	Images  []ImageStatus `json:"images"`
}

func (s *Status) add(st ImageStatus) {
	for i := range s.Images {
		if s.Images[i].Image == st.Image {
			s.Images[i] = st
		}
	}
	switch st.Status {
	case Pulled:
		s.Pulled++
	case Present:
		s.Present++
	case Failed:
		s.Failed++
	case Skipped:
		s.Skipped++
	}
	s.Bytes += st.Bytes
}

// FailedError is a run that ended with images not pulled.
type FailedError struct {
	// Failed are the images that failed, each with why.
	Failed []ImageStatus
	// Stopped says the run stopped at the first failure (no BestEffort).
	Stopped bool
}

func (e *FailedError) Error() string {
	var parts []string
	for _, f := range e.Failed {
		parts = append(parts, fmt.Sprintf("%s: %s", f.Image, f.Reason))
	}
	msg := fmt.Sprintf("%d image(s) not pulled: %s", len(e.Failed), strings.Join(parts, "; "))
	if e.Stopped {
		msg += " (stopped at the first failure; --best-effort goes on)"
	}
	return msg
}

// SpaceError is a run refused before the first blob: the blobs not yet in
// the store do not fit in its free space.
type SpaceError struct {
	Need, Free uint64
	Store      string
}

func (e *SpaceError) Error() string {
	return fmt.Sprintf("the images need %d bytes of blobs the store %s does not have, and it has %d free: nothing was fetched", e.Need, e.Store, e.Free)
}

// Run pulls every image of images into the store and says what became of
// each. It returns *SpaceError before fetching anything when the store
// lacks the room, and *FailedError when an image failed (after every image
// was tried, with BestEffort; at the first failure, without).
func Run(ctx context.Context, images []string, o Options) (*Status, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	status := &Status{Total: len(images), Images: make([]ImageStatus, len(images))}
	for i, img := range images {
		status.Images[i] = ImageStatus{Image: img, Status: "pending"}
	}
	out := &outcomes{status: status, events: o.Events}
	plans, err := inspectAll(ctx, images, o, out)
	if err != nil {
		return status, err
	}
	missing, err := checkSpace(o.Store, plans)
	if err != nil {
		return status, err
	}
	// The blobs in flight go to a folder of this run's: what a killed run
	// left half-fetched is removed by the next.
	scratch.RemoveStale(o.TempDir, o.Progress)
	stage, err := scratch.New(o.TempDir, "precache")
	if err != nil {
		return status, err
	}
	defer stage.Remove()
	o.TempDir = stage.Path
	return status, pullAll(ctx, plans, o, out, missing)
}

func (o Options) withDefaults() (Options, error) {
	if o.Store == nil || o.Policy == nil {
		return o, errors.New("precache: a store and a signature policy are required")
	}
	if o.Jobs == 0 {
		o.Jobs = DefaultJobs()
	}
	if o.Jobs < 0 {
		return o, fmt.Errorf("precache: %d jobs: want 1 or more", o.Jobs)
	}
	if o.Tries == 0 {
		o.Tries = 5
	}
	if o.RetryDelay == 0 {
		o.RetryDelay = 2 * time.Second
	}
	if o.TempDir == "" {
		o.TempDir = "/var/tmp"
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o, nil
}

// retry runs fn up to o.Tries times, waiting o.RetryDelay, then twice as
// long each time. A "manifest unknown" is not tried again: the image is
// not there, and will not be.
func retry(ctx context.Context, o Options, what string, fn func() error) error {
	delay := o.RetryDelay
	var err error
	for try := 1; try <= o.Tries; try++ {
		if err = fn(); err == nil || manifestUnknown(err) || ctx.Err() != nil {
			return err
		}
		if try < o.Tries {
			fmt.Fprintf(o.Progress, "Retrying %s in %s (try %d of %d failed: %v)\n", what, delay, try, o.Tries, err)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return ctx.Err()
			}
			delay *= 2
		}
	}
	return err
}

// manifestUnknown says whether a registry said the image is not there:
// containers/image words the registry's MANIFEST_UNKNOWN so.
func manifestUnknown(err error) bool {
	return strings.Contains(err.Error(), "manifest unknown")
}

// outcomes collects the images' statuses from the reads and the pulls.
type outcomes struct {
	mu     sync.Mutex
	status *Status
	events func(ImageStatus)
}

func (c *outcomes) set(st ImageStatus) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.status.add(st)
	if c.events != nil {
		c.events(st)
	}
}
