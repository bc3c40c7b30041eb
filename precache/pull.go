package precache

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/go-units"
	"github.com/opencontainers/go-digest"
	"github.com/seedbuild/seedbuild/imageref"
	"go.podman.io/image/v5/copy"
	istorage "go.podman.io/image/v5/storage"
	"go.podman.io/image/v5/types"
)

// claims makes each blob fetched once when images that share layers are
// pulled at the same time. containers/image's copy to containers-storage
// reuses a layer the store has, but two copies running at once each fetch
// a layer neither has yet (the agent's parallel `podman pull`s do the
// same). So before its copy starts, an image claims every layer it needs
// that the store lacks and no other pull has claimed, and waits for the
// pulls that claimed the rest. Claims are taken under one lock, an image's
// all at once, so an image waits only on pulls that claimed before it: no
// cycle, no deadlock.
type claims struct {
	mu    sync.Mutex
	owner map[digest.Digest]*claim
}

// claim is one pull's hold on the layers it fetches; done is closed when
// the pull ends.
type claim struct {
	done   chan struct{}
	layers []digest.Digest
}

func newClaims() *claims { return &claims{owner: map[digest.Digest]*claim{}} }

// take claims the layers of an image that are not present and not
// claimed, and returns the claim and the claims of other pulls to wait
// for.
func (c *claims) take(layers []digest.Digest, present func(digest.Digest) bool) (*claim, []*claim) {
	c.mu.Lock()
	defer c.mu.Unlock()
	mine := &claim{done: make(chan struct{})}
	var wait []*claim
	for _, d := range layers {
		if other, ok := c.owner[d]; ok {
			if other != mine && !containsClaim(wait, other) {
				wait = append(wait, other)
			}
			continue
		}
		if present(d) {
			continue
		}
		c.owner[d] = mine
		mine.layers = append(mine.layers, d)
	}
	return mine, wait
}

// release ends a pull's claim. When the pull failed, its layers are
// claimable again, by the pulls that waited for it among others.
func (c *claims) release(cl *claim, failed bool) {
	c.mu.Lock()
	if failed {
		for _, d := range cl.layers {
			if c.owner[d] == cl {
				delete(c.owner, d)
			}
		}
	}
	c.mu.Unlock()
	close(cl.done)
}

func containsClaim(list []*claim, c *claim) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}

// pullAll pulls the images inspectAll left to fetch, Options.Jobs at a
// time, each after the pulls it waits on (claims). missing is the bytes of
// the blobs the store lacks (checkSpace), for the progress lines.
func pullAll(ctx context.Context, plans []*imagePlan, o Options, out *outcomes, missing int64) error {
	cl := newClaims()
	var fetched atomic.Int64
	stop := reportProgress(o, out, &fetched, missing)
	defer stop()
	failed := eachImage(ctx, o, out, len(plans), func(ctx context.Context, i int) ImageStatus {
		if p := plans[i]; p != nil && !p.done {
			return pullOne(ctx, p, o, cl, &fetched)
		}
		return ImageStatus{}
	})
	for _, st := range out.status.Images {
		if st.Status == Failed && !containsImage(failed, st.Image) {
			failed = append(failed, st)
		}
	}
	if len(failed) > 0 {
		return &FailedError{Failed: failed, Stopped: !o.BestEffort}
	}
	return ctx.Err()
}

// eachImage runs work for items 0 to n-1, in order, o.Jobs at a time, and
// records each status it returns (none where its Status is ""). A failure
// cancels the rest unless BestEffort. It returns the failures.
func eachImage(ctx context.Context, o Options, out *outcomes, n int, work func(ctx context.Context, i int) ImageStatus) []ImageStatus {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, o.Jobs)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []ImageStatus
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			st := work(ctx, i)
			if st.Status == "" {
				return
			}
			out.set(st)
			if st.Status == Failed {
				mu.Lock()
				failed = append(failed, st)
				mu.Unlock()
				if !o.BestEffort {
					cancel()
				}
			}
		}()
	}
	wg.Wait()
	return failed
}

func containsImage(list []ImageStatus, image string) bool {
	for _, s := range list {
		if s.Image == image {
			return true
		}
	}
	return false
}

// pullOne claims the image's layers, waits for the pulls it depends on,
// and copies the image into the store, retrying as Options say.
func pullOne(ctx context.Context, p *imagePlan, o Options, cl *claims, fetched *atomic.Int64) ImageStatus {
	digests := make([]digest.Digest, len(p.layers))
	sizes := map[digest.Digest]int64{}
	for i, l := range p.layers {
		digests[i] = l.Digest
		sizes[l.Digest] = l.Size
	}
	mine, wait := cl.take(digests, func(d digest.Digest) bool { return layerPresent(o.Store, d) })
	for _, w := range wait {
		select {
		case <-w.done:
		case <-ctx.Done():
			cl.release(mine, true)
			return ImageStatus{Image: p.listed, Status: Failed, Reason: ctx.Err().Error()}
		}
	}
	var own int64
	for _, d := range mine.layers {
		own += sizes[d]
	}
	image := p.listed
	err := retry(ctx, o, "pulling "+p.name, func() error { return copyImage(ctx, p, o, fetched) })
	cl.release(mine, err != nil)
	if err != nil {
		return ImageStatus{Image: image, Status: Failed, Reason: err.Error()}
	}
	return ImageStatus{Image: image, Status: Pulled, Bytes: own}
}

// copyImage copies the image into the store under its name; the blobs in
// flight sit in a folder of TempDir, and what they add is counted in
// fetched as they arrive.
func copyImage(ctx context.Context, p *imagePlan, o Options, fetched *atomic.Int64) error {
	dest, err := istorage.Transport.ParseStoreReference(o.Store, p.name)
	if err != nil {
		return fmt.Errorf("naming %q in the store: %w", p.name, err)
	}
	sys := types.SystemContext{}
	if o.SystemContext != nil {
		sys = *o.SystemContext
	}
	sys.BigFilesTemporaryDir = o.TempDir
	events := make(chan types.ProgressProperties, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range events {
			if ev.Event == types.ProgressEventRead {
				fetched.Add(int64(ev.OffsetUpdate))
			}
		}
	}()
	_, err = imageref.CopyImage(ctx, o.Policy, dest, p.ref, &copy.Options{
		SourceCtx: &sys, DestinationCtx: &sys,
		Progress: events, ProgressInterval: 500 * time.Millisecond,
	}, imageref.Retry{})
	close(events)
	<-done
	return err
}

// reportProgress prints, every few seconds, the images done and the bytes
// fetched against the total to fetch, with an estimate of the time left.
func reportProgress(o Options, out *outcomes, fetched *atomic.Int64, total int64) func() {
	start := time.Now()
	tick := time.NewTicker(3 * time.Second)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			n := fetched.Load()
			out.mu.Lock()
			done, all := out.status.Pulled+out.status.Present+out.status.Skipped+out.status.Failed, out.status.Total
			out.mu.Unlock()
			eta := "unknown"
			if el := time.Since(start); n > 0 && total > n {
				eta = (time.Duration(float64(el) * float64(total-n) / float64(n))).Round(time.Second).String()
			}
			fmt.Fprintf(o.Progress, "Precache: %d of %d images done, %s of %s fetched, about %s left\n",
				done, all, units.HumanSize(float64(n)), units.HumanSize(float64(total)), eta)
		}
	}()
	return func() { tick.Stop(); close(stop); wg.Wait() }
}
