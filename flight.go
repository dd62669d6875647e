package wetix

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/client"
)

// flight is one refresh in progress; readers that arrive meanwhile wait for
// its outcome instead of starting their own.
type flight struct {
	done chan struct{}
	out  outcome
}

// outcome is what a refresh found, independent of who asked: each caller
// turns it into its own answer (answer), so a plain read that joins a forced
// rotation gets what a plain read would have got.
type outcome struct {
	cfg *wetixConfig
	// base is the state the refresh started from (nil when it never got
	// that far); it is what a reader may still be served when the refresh
	// fails.
	base *tokenState
	// fresh is the state to serve when err is nil.
	fresh *tokenState
	err   error
}

// refresh runs the single flight. force (the rotate path) skips the "still
// fresh" check, the cooldown and stale serving; a forced refresh that finds a
// flight in progress waits for it and then runs its own, since that flight
// may have found nothing to do.
func (ts *tokenSource) refresh(ctx context.Context, storage logical.Storage, force bool) (*tokenResult, error) {
	for {
		ts.flightMu.Lock()
		f := ts.flight
		if f == nil {
			f = &flight{done: make(chan struct{})}
			ts.flight = f
			ts.flightMu.Unlock()
			return ts.answer(ts.lead(f, storage, force), force)
		}
		ts.flightMu.Unlock()
		select {
		case <-f.done:
			if !force {
				return ts.answer(f.out, false)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// lead runs flight f and hands its outcome to everyone waiting on it.
func (ts *tokenSource) lead(f *flight, storage logical.Storage, force bool) outcome {
	// The flight runs under the backend's lifetime, not the request that
	// started it: the readers waiting on it must not fail because the first
	// caller hung up. The retry budget bounds it.
	ctx, cancel := context.WithTimeout(ts.life, ts.retry.budget)
	defer cancel()
	f.out = ts.refreshLocked(ctx, storage, force)

	ts.flightMu.Lock()
	ts.flight = nil
	ts.flightMu.Unlock()
	close(f.done)
	return f.out
}

// answer turns a refresh's outcome into what this caller gets.
func (ts *tokenSource) answer(out outcome, force bool) (*tokenResult, error) {
	if out.err == nil {
		return &tokenResult{state: out.fresh}, nil
	}
	if !force && out.base != nil && !ts.due(out.base, out.cfg) {
		// Only a forced rotation could have tried to replace this token;
		// a plain read is served it as if nothing had run.
		return &tokenResult{state: out.base}, nil
	}
	return ts.failed(out.base, out.cfg, out.err, force)
}

// retryAtFor is when WeTix may be asked again after err.
func (ts *tokenSource) retryAtFor(err error, now time.Time) time.Time {
	wait := ts.failureCooldown
	if cerr, ok := client.AsError(err); ok && cerr.RetryAfter > wait {
		wait = cerr.RetryAfter
	}
	return now.Add(wait)
}
