package wetix

import (
	"sync"
	"sync/atomic"
)

// entryCache is the in-memory copy of one stored entry. Reads are a single
// atomic load. A copy read from storage is kept only if no change (a write,
// a delete or an Invalidate) was recorded since that storage read began:
// every change bumps the version and replaces the value under one lock, so a
// slow read of the old entry can never be cached over a newer change.
type entryCache[T any] struct {
	mu      sync.Mutex
	version atomic.Uint64
	value   atomic.Pointer[T]
}

// get returns the cached copy, nil when storage must be read.
func (c *entryCache[T]) get() *T { return c.value.Load() }

// begin is called before reading storage; pass its result to fill.
func (c *entryCache[T]) begin() uint64 { return c.version.Load() }

// fill caches what storage returned, unless a change came in meanwhile.
func (c *entryCache[T]) fill(since uint64, v *T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version.Load() == since {
		c.value.Store(v)
	}
}

// set records a change: v is now the entry (nil: unknown, read storage).
func (c *entryCache[T]) set(v *T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.version.Add(1)
	c.value.Store(v)
}
