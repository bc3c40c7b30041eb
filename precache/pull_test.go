package precache

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func d(s string) digest.Digest { return digest.FromString(s) }

// TestClaims: an image claims the layers no one has and the store lacks,
// and waits for the pulls that claimed the rest; a failed pull's layers
// can be claimed again.
func TestClaims(t *testing.T) {
	c := newClaims()
	present := func(x digest.Digest) bool { return x == d("in-store") }
	a, wait := c.take([]digest.Digest{d("base"), d("mid"), d("in-store")}, present)
	if len(wait) != 0 || len(a.layers) != 2 {
		t.Fatalf("first image: claimed %d, waits for %d; want 2 claimed (not the one in the store), no wait", len(a.layers), len(wait))
	}
	b, wait := c.take([]digest.Digest{d("base"), d("own-b")}, present)
	if len(wait) != 1 || wait[0] != a || len(b.layers) != 1 || b.layers[0] != d("own-b") {
		t.Fatalf("second image: claimed %v, waits %d; want own-b claimed and the first waited for", b.layers, len(wait))
	}
	c.release(a, true)
	select {
	case <-a.done:
	default:
		t.Fatal("release did not end the claim")
	}
	cl, wait := c.take([]digest.Digest{d("base"), d("own-b")}, present)
	if len(wait) != 1 || wait[0] != b || len(cl.layers) != 1 || cl.layers[0] != d("base") {
		t.Errorf("after the first pull failed: claimed %v, waits %d; want base claimed again and the second waited for", cl.layers, len(wait))
	}
}

// TestClaimsFetchEachBlobOnce: images sharing layers, pulled at the same
// time by several workers, each fetch a layer only when no one has: every
// blob is fetched once, and no pull waits forever.
func TestClaimsFetchEachBlobOnce(t *testing.T) {
	c := newClaims()
	var mu sync.Mutex
	store := map[digest.Digest]bool{}
	fetches := map[digest.Digest]int{}
	var images [][]digest.Digest
	for i := range 40 {
		images = append(images, []digest.Digest{d("base"), d("base-2"), d("mid-" + string(rune('a'+i%4))), d("own-" + string(rune('a'+i)))})
	}
	sem := make(chan struct{}, 10)
	var wg sync.WaitGroup
	var active atomic.Int32
	for _, layers := range images {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			mine, wait := c.take(layers, func(x digest.Digest) bool { mu.Lock(); defer mu.Unlock(); return store[x] })
			for _, w := range wait {
				<-w.done
			}
			active.Add(1)
			// The copy: fetches what the store lacks.
			for _, l := range layers {
				mu.Lock()
				if !store[l] {
					fetches[l]++
					store[l] = true
				}
				mu.Unlock()
				time.Sleep(time.Millisecond)
			}
			c.release(mine, false)
		}()
	}
	wg.Wait()
	for l, n := range fetches {
		if n != 1 {
			t.Errorf("layer %s fetched %d times, want once", l, n)
		}
	}
	if got := active.Load(); got != int32(len(images)) {
		t.Errorf("%d of %d pulls ran", got, len(images))
	}
}

func TestParsePriority(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Priority
		ok   bool
	}{
		{"low", DefaultPriority, true},
		{"normal", Priority{0, "best-effort", 4}, true},
		{"10", Priority{10, "best-effort", 4}, true},
		{"5,idle", Priority{5, "idle", 4}, true},
		{"5,best-effort:7", Priority{5, "best-effort", 7}, true},
		{"20", Priority{}, false},
		{"5,fast", Priority{}, false},
		{"5,best-effort:9", Priority{}, false},
		{"high", Priority{}, false},
	} {
		got, err := ParsePriority(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("ParsePriority(%q) = %+v, %v; want %+v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
