package wetix

import (
	"context"
	"math/rand/v2"
	"time"
)

// retryPolicy bounds how hard a read pushes a failing WeTix.
type retryPolicy struct {
	attempts int           // transient failures tolerated per refresh
	base     time.Duration // first backoff
	max      time.Duration // longest single wait, Retry-After included
	// budget bounds a whole refresh, retries included. It stays under
	// Vault's default 90s request deadline so that waiting readers get the
	// refresh's own answer rather than Vault's timeout.
	budget time.Duration
}

var defaultRetryPolicy = retryPolicy{attempts: 4, base: 250 * time.Millisecond, max: 10 * time.Second, budget: 80 * time.Second}

// wait sleeps before the next attempt and says whether there is one: false
// when attempts are used up or the wait would pass the deadline. A
// Retry-After longer than the budget ends the retries at once rather than
// hammering WeTix early.
func (p retryPolicy) wait(ctx context.Context, attempt int, retryAfter time.Duration) bool {
	if attempt+1 >= p.attempts {
		return false
	}
	d := p.base << attempt
	// Full jitter on half the delay, so mounts that failed together do not
	// retry together.
	d = d/2 + rand.N(d/2+1)
	if retryAfter > d {
		d = retryAfter
	}
	if d > p.max {
		if retryAfter > p.max {
			return false
		}
		d = p.max
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
