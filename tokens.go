package wetix

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/client"
)

// tokenSource keeps one WeTix credential alive for one mount: it serves the
// cached access token while it is fresh, refreshes it when it is due (one
// refresh at a time, however many readers wait), falls back to the
// client-credentials grant when the refresh token is missing, dead or in
// doubt, and stores every rotated pair before anyone sees it.
//
// It is the only reader and writer of the tokens entry, and the only writer
// of the config entry (credential.go), so that a change of credentials and a
// refresh can never interleave. It knows nothing about Vault paths or
// responses; the path handlers ask it and wrap the answer.
type tokenSource struct {
	// configMu serializes config writes and deletes (credential.go); it is
	// taken before flightMu and mu.
	configMu sync.Mutex
	// mu is held for a whole refresh and for every config write or delete
	// that replaces the credentials.
	// Everything a refresh stores is built from the state it loaded under
	// mu, never from the cache, which Invalidate may clear at any time.
	mu sync.Mutex
	// cache mirrors the stored tokens entry; read without mu on the hot path.
	cache entryCache[tokenState]
	// pending holds a rotated pair whose storage write failed. It must be
	// written before anything else happens: the refresh token inside it may be
	// the only live one. Guarded by mu.
	pending *tokenState
	// lastStored is this node's last successful tokens write (under mu).
	// Unlike the cache, Invalidate keeps it: a pending pair stored while
	// the entry cannot be read still keeps the counts this node stored.
	lastStored *tokenState
	// hasPending mirrors pending != nil for the periodic tick, which flushes
	// it without taking mu when there is nothing to do.
	hasPending atomic.Bool
	// failure is the last refresh's failure, nil after a success. Written
	// under mu, read without it. Until its retryAt, refreshes answer from it
	// instead of calling WeTix; while it is transient, reads of a servable
	// token do not wait for the retry. Nothing else remembers an outage, so
	// the next answer from WeTix (a success, or a different failure)
	// replaces what readers see.
	failure         atomic.Pointer[refreshFailure]
	failureCooldown time.Duration
	// unsavedStale counts stale serves not yet in storage (stale_serves.go).
	unsavedStale unsavedStaleServes

	flightMu sync.Mutex
	flight   *flight
	// background counts refreshes running without a caller (Clean waits).
	background sync.WaitGroup
	// outageGrace is how long a read of a servable token waits for a
	// refresh during an outage before it takes the current token.
	outageGrace time.Duration
	// fingerprint is the lease fingerprint of the token last served, so that
	// reads of one token hash it once (secret_access_token.go).
	fingerprint atomic.Pointer[fingerprintMemo]

	// life is the backend's lifetime: flights run under it, not under the
	// request that started them, and stop when the mount goes away.
	life      context.Context
	now       func() time.Time
	logger    hclog.Logger
	canWrite  func() bool
	configs   *configStore
	retry     retryPolicy
	newClient func(*wetixConfig) grantClient
}

// grantClient is the part of client.Client the lifecycle uses.
type grantClient interface {
	ClientCredentials(ctx context.Context) (*client.Pair, error)
	Refresh(ctx context.Context, refreshToken string) (*client.Pair, error)
}

// refreshFailure is what the last failed refresh left behind.
type refreshFailure struct {
	err     error
	retryAt time.Time
}

// transient says whether WeTix may simply be down: only then is a due token
// served while the retry runs behind it.
func (f *refreshFailure) transient() bool {
	cerr, ok := client.AsError(f.err)
	return ok && cerr.Kind == client.KindTransient
}

// tokenResult is what a caller gets: the state to serve and any warnings.
type tokenResult struct {
	state    *tokenState
	warnings []string
	// staleReason, when set, says why a due token is served instead of a
	// new one (stale_serves.go).
	staleReason string
}

// errNotConfigured is returned when the mount has no config yet.
var errNotConfigured = errors.New("the WeTix client is not configured: run `vault write <mount>/config client_id=... client_secret=...`")

// get returns a token that is not due, refreshing it when needed.
func (ts *tokenSource) get(ctx context.Context, storage logical.Storage, cfg *wetixConfig) (*tokenResult, error) {
	st := ts.cache.get()
	if st != nil && st.Generation == cfg.Generation {
		if !ts.due(st, cfg) {
			return &tokenResult{state: st}, nil
		}
		// During an outage only the first failing refresh makes readers
		// wait; after that a token that still outlives a lease is served at
		// once and the retry happens behind it. Without this, every read
		// after each cooldown would sit through a full round of retries
		// against a WeTix that may just be hanging.
		if f := ts.failure.Load(); f != nil && (f.transient() || st.secretPending(cfg)) && ts.servable(st, cfg) {
			return ts.staleWhileRefreshing(ctx, storage, st, cfg, f)
		}
	}
	return ts.refresh(ctx, storage, false)
}

// staleWhileRefreshing gives a refresh outageGrace to finish (WeTix may be
// back), then serves the current token with a warning and lets the refresh
// go on without the reader.
func (ts *tokenSource) staleWhileRefreshing(ctx context.Context, storage logical.Storage, st *tokenState, cfg *wetixConfig, last *refreshFailure) (*tokenResult, error) {
	f := ts.refreshInBackground(storage)
	grace := time.NewTimer(ts.outageGrace)
	defer grace.Stop()
	select {
	case <-f.done:
		if f.out.superseded {
			return ts.refresh(ctx, storage, false)
		}
		// Whatever the refresh learnt (back, still down, or a new kind of
		// failure) is the answer, as for any reader of a flight.
		return ts.answer(f.out, false)
	case <-grace.C:
	case <-ctx.Done():
	}
	if cerr, ok := client.AsError(last.err); ok && st.secretPending(cfg) {
		return &tokenResult{state: st, warnings: []string{pendingSecretWarning(st, cfg, cerr)}, staleReason: staleSecretPending}, nil
	}
	return &tokenResult{state: st, warnings: []string{staleWarning(st, last.err.Error())}, staleReason: staleWeTixFailed}, nil
}

// refreshInBackground joins the flight in progress or starts one that no
// caller waits for; it stops with the backend.
func (ts *tokenSource) refreshInBackground(storage logical.Storage) *flight {
	ts.flightMu.Lock()
	defer ts.flightMu.Unlock()
	if ts.flight != nil {
		return ts.flight
	}
	f := ts.newFlightLocked()
	ts.background.Add(1)
	go func() {
		defer ts.background.Done()
		ts.lead(f, storage, false)
	}()
	return f
}

func staleWarning(st *tokenState, cause string) string {
	return fmt.Sprintf("WeTix could not be reached to refresh the access token (%s); serving the current token, which expires at %s. The plugin keeps retrying.",
		cause, st.AccessExpiresAt.UTC().Format(time.RFC3339))
}

// current returns the state without refreshing it, for status and the
// periodic check. It reads storage only when nothing is cached.
func (ts *tokenSource) current(ctx context.Context, storage logical.Storage, cfg *wetixConfig) (*tokenState, error) {
	if st := ts.cache.get(); st != nil && st.Generation == cfg.Generation {
		return st, nil
	}
	st, err := readTokenState(ctx, storage)
	if err != nil {
		return nil, err
	}
	return st.forGeneration(cfg), nil
}

// loadLocked returns the current state under mu: the in-memory copy, else
// storage. Tokens of an earlier config generation belong to other client
// credentials (or predate a seeded refresh token) and are set aside, keeping
// only their history.
func (ts *tokenSource) loadLocked(ctx context.Context, storage logical.Storage, cfg *wetixConfig) (*tokenState, error) {
	if st := ts.cache.get(); st != nil && st.Generation == cfg.Generation {
		return st, nil
	}
	since := ts.cache.begin()
	st, err := readTokenState(ctx, storage)
	if err != nil {
		return nil, err
	}
	st = st.forGeneration(cfg)
	ts.cache.fill(since, st)
	return st, nil
}

// storeLocked writes st as the tokens entry, with the stale serves counted
// since the last write, and once it is stored makes it the in-memory copy.
// Callers go on from the returned copy.
func (ts *tokenSource) storeLocked(ctx context.Context, storage logical.Storage, st *tokenState) (*tokenState, error) {
	counts := ts.unsavedStale.take()
	st = withStaleServes(st, counts)
	if err := writeTokenState(ctx, storage, st); err != nil {
		ts.unsavedStale.give(counts)
		return nil, err
	}
	ts.cache.set(st)
	ts.lastStored = st
	return st, nil
}

func (ts *tokenSource) setPendingLocked(st *tokenState) {
	ts.pending = st
	ts.hasPending.Store(st != nil)
}

// invalidate forgets the in-memory copy so the next read goes to storage.
// Used when storage changes underneath (a standby, a config change).
func (ts *tokenSource) invalidate() { ts.cache.set(nil) }
