package wetixtest

import (
	"sync"
	"time"
)

// Clock is a clock a test moves by hand: give its Now to Options.Now and to
// the code under test, so expiry is tested by Advance instead of sleeping.
// It is safe for concurrent use; the zero value starts at the zero time.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock standing at start.
func NewClock(start time.Time) *Clock { return &Clock{t: start} }

// Now is the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
