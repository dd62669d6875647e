package wetix

import (
	"context"
	"errors"

	"github.com/hashicorp/vault/sdk/logical"
)

// flight is one refresh in progress; readers that arrive meanwhile wait for
// its outcome instead of starting their own.
type flight struct {
	// ctx is the backend's lifetime, not the request that started the
	// flight: the readers waiting on it must not fail because the first
	// caller hung up. The retry budget bounds it, and a change of
	// credentials cancels it (supersede).
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
	out    outcome
}

// errSuperseded cancels a flight whose config is being changed: a refresh
// with the old credentials is pointless, and it holds the lock that the
// change waits for, for up to the whole retry budget when WeTix hangs.
var errSuperseded = errors.New("the config changed while the refresh ran")

// newFlightLocked registers a new flight; the caller holds flightMu.
func (ts *tokenSource) newFlightLocked() *flight {
	ctx, cancelTimeout := context.WithTimeout(ts.life, ts.retry.budget)
	ctx, cancel := context.WithCancelCause(ctx)
	f := &flight{ctx: ctx, done: make(chan struct{})}
	f.cancel = func(cause error) { cancel(cause); cancelTimeout() }
	ts.flight = f
	return f
}

// lockForConfigChange cancels the flight in progress, if any, and takes mu
// before any new flight can: the readers of the cancelled flight start a new
// one, and it must see the changed config. Cancelling a refresh that already
// sent its refresh token only costs a client-credentials grant later: the
// sent mark is stored first. The caller unlocks mu.
func (ts *tokenSource) lockForConfigChange() {
	ts.flightMu.Lock()
	if ts.flight != nil {
		ts.flight.cancel(errSuperseded)
	}
	// The cancelled flight releases mu before it takes flightMu to finish,
	// so holding flightMu while waiting here cannot deadlock.
	ts.mu.Lock()
	ts.flightMu.Unlock()
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
	// superseded: the config changed under the refresh; ask again.
	superseded bool
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
			f = ts.newFlightLocked()
			ts.flightMu.Unlock()
			if out := ts.lead(f, storage, force); !out.superseded {
				return ts.answer(out, force)
			}
			continue
		}
		ts.flightMu.Unlock()
		select {
		case <-f.done:
			if !force && !f.out.superseded {
				return ts.answer(f.out, false)
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// lead runs flight f and hands its outcome to everyone waiting on it.
func (ts *tokenSource) lead(f *flight, storage logical.Storage, force bool) outcome {
	defer f.cancel(nil)
	f.out = ts.refreshLocked(f.ctx, storage, force)
	if f.out.err != nil && context.Cause(f.ctx) == errSuperseded {
		f.out = outcome{superseded: true}
	}

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
