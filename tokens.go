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
// It knows nothing about Vault paths or responses; the path handlers ask it for
// a token and wrap the answer.
type tokenSource struct {
	// mu is held for a whole refresh and by config writes; a refresh
	// re-reads the config under it, so tokens of an old client are never
	// stored after a new config.
	mu sync.Mutex
	// cached mirrors the stored entry; nil means "read storage first". It is
	// read without mu on the hot path.
	cached atomic.Pointer[tokenState]
	// epoch counts invalidations, so a storage read that raced one is
	// served but not cached.
	epoch atomic.Uint64
	// pending holds a rotated pair whose storage write failed. It must be
	// written before anything else happens: the refresh token inside it may be
	// the only live one. Guarded by mu.
	pending *tokenState
	// lastFailure is the error of the last refresh; until retryAt, reads
	// answer from it instead of calling WeTix. Guarded by mu.
	lastFailure     error
	retryAt         time.Time
	failureCooldown time.Duration

	flightMu sync.Mutex
	flight   *flight
	// outage is set while the last refresh failed: from then on a read of a
	// still servable token gets it at once, with a warning, and the retry
	// runs in the background instead of holding the read.
	outage atomic.Bool
	// background counts refreshes running without a caller (Clean waits).
	background sync.WaitGroup
	// outageGrace is how long a read of a servable token waits for a
	// refresh during an outage before it takes the current token.
	outageGrace time.Duration

	// life is the backend's lifetime: flights run under it, not under the
	// request that started them, and stop when the mount goes away.
	life      context.Context
	now       func() time.Time
	logger    hclog.Logger
	canWrite  func() bool
	config    func(context.Context, logical.Storage) (*wetixConfig, error)
	retry     retryPolicy
	newClient func(*wetixConfig) grantClient
}

// grantClient is the part of client.Client the lifecycle uses.
type grantClient interface {
	ClientCredentials(ctx context.Context) (*client.Pair, error)
	Refresh(ctx context.Context, refreshToken string) (*client.Pair, error)
}

// tokenResult is what a caller gets: the state to serve and any warnings.
type tokenResult struct {
	state    *tokenState
	warnings []string
}

// errNotConfigured is returned when the mount has no config yet.
var errNotConfigured = errors.New("the WeTix client is not configured: run `vault write <mount>/config client_id=... client_secret=...`")

// get returns a token that is not due, refreshing it when needed.
func (ts *tokenSource) get(ctx context.Context, storage logical.Storage, cfg *wetixConfig) (*tokenResult, error) {
	st := ts.cached.Load()
	if st != nil && st.Generation == cfg.Generation {
		if !ts.due(st, cfg) {
			return &tokenResult{state: st}, nil
		}
		// During an outage only the first failing refresh makes readers
		// wait; after that a token that still outlives a lease is served at
		// once and the retry happens behind it. Without this, every read
		// after each cooldown would sit through a full round of retries
		// against a WeTix that may just be hanging.
		if ts.outage.Load() && ts.servable(st, cfg) {
			return ts.staleWhileRefreshing(ctx, storage, st)
		}
	}
	return ts.refresh(ctx, storage, false)
}

// servable says whether a due token may still be handed out: it outlives a
// full lease, margin included.
func (ts *tokenSource) servable(st *tokenState, cfg *wetixConfig) bool {
	return st.hasAccessToken() && st.accessRemaining(ts.now())-leaseMargin(st.accessLifetime()) >= cfg.TTL
}

// staleWhileRefreshing gives a refresh outageGrace to succeed (WeTix may be
// back), then serves the current token with a warning and lets the refresh
// go on without the reader.
func (ts *tokenSource) staleWhileRefreshing(ctx context.Context, storage logical.Storage, st *tokenState) (*tokenResult, error) {
	f := ts.refreshInBackground(storage)
	grace := time.NewTimer(ts.outageGrace)
	defer grace.Stop()
	select {
	case <-f.done:
		if f.err == nil {
			return f.res, nil
		}
	case <-grace.C:
	case <-ctx.Done():
	}
	return &tokenResult{state: st, warnings: []string{staleWarning(st, ts.lastFailureText())}}, nil
}

// refreshInBackground joins the flight in progress or starts one that no
// caller waits for; it stops with the backend.
func (ts *tokenSource) refreshInBackground(storage logical.Storage) *flight {
	ts.flightMu.Lock()
	defer ts.flightMu.Unlock()
	if ts.flight != nil {
		return ts.flight
	}
	f := &flight{done: make(chan struct{})}
	ts.flight = f
	ts.background.Add(1)
	go func() {
		defer ts.background.Done()
		_, _ = ts.lead(f, storage, false)
	}()
	return f
}

func staleWarning(st *tokenState, cause string) string {
	return fmt.Sprintf("WeTix could not be reached to refresh the access token (%s); serving the current token, which expires at %s. The plugin keeps retrying.",
		cause, st.AccessExpiresAt.UTC().Format(time.RFC3339))
}

// lastFailureText is the last refresh error as stored for status: safe to
// show, and readable without the lock.
func (ts *tokenSource) lastFailureText() string {
	if st := ts.cached.Load(); st != nil && st.Stats.LastError != "" {
		return st.Stats.LastError
	}
	return "the last refresh failed"
}

// due says whether the access token should be replaced before being served:
// missing, inside the refresh window at the end of its life, or with a
// refresh token close to its own expiry.
func (ts *tokenSource) due(st *tokenState, cfg *wetixConfig) bool {
	if !st.hasAccessToken() {
		return true
	}
	now := ts.now()
	window := time.Duration(float64(st.accessLifetime()) * refreshWindow)
	if st.accessRemaining(now) <= window || st.accessRemaining(now) <= leaseMargin(st.accessLifetime()) {
		return true
	}
	return refreshTokenNearExpiry(st, cfg, now)
}

// current returns the state without refreshing it, for status and the
// periodic check. It reads storage only when nothing is cached.
func (ts *tokenSource) current(ctx context.Context, storage logical.Storage, cfg *wetixConfig) (*tokenState, error) {
	if st := ts.cached.Load(); st != nil && st.Generation == cfg.Generation {
		return st, nil
	}
	st, err := readTokenState(ctx, storage)
	if err != nil {
		return nil, err
	}
	return st.forGeneration(cfg), nil
}

// refreshTokenNearExpiry is what keeps an idle mount alive: the periodic
// function refreshes early when the refresh token itself nears its end, so
// months without a read never strand the credential.
func refreshTokenNearExpiry(st *tokenState, cfg *wetixConfig, now time.Time) bool {
	if st.RefreshToken == "" || st.RefreshExpiresAt.IsZero() || st.RefreshIssuedAt.IsZero() {
		return false
	}
	lifetime := st.RefreshExpiresAt.Sub(st.RefreshIssuedAt)
	return st.RefreshExpiresAt.Sub(now) <= time.Duration(float64(lifetime)*refreshWindow)
}

// load returns the current state under mu: the in-memory copy, else
// storage. Tokens of an earlier config generation belong to other client
// credentials (or predate a seeded refresh token) and are set aside, keeping
// only their history.
func (ts *tokenSource) load(ctx context.Context, storage logical.Storage, cfg *wetixConfig) (*tokenState, error) {
	if st := ts.cached.Load(); st != nil && st.Generation == cfg.Generation {
		return st, nil
	}
	epoch := ts.epoch.Load()
	st, err := readTokenState(ctx, storage)
	if err != nil {
		return nil, err
	}
	st = st.forGeneration(cfg)
	if ts.epoch.Load() == epoch {
		ts.cached.Store(st)
	}
	return st, nil
}

// flight is one refresh in progress; readers that arrive meanwhile wait for
// its outcome instead of starting their own.
type flight struct {
	done chan struct{}
	res  *tokenResult
	err  error
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
			return ts.lead(f, storage, force)
		}
		ts.flightMu.Unlock()
		select {
		case <-f.done:
			if !force {
				return f.res, f.err
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// lead runs flight f and hands its outcome to everyone waiting on it.
func (ts *tokenSource) lead(f *flight, storage logical.Storage, force bool) (*tokenResult, error) {
	// The flight runs under the backend's lifetime, not the request that
	// started it: the readers waiting on it must not fail because the first
	// caller hung up. The retry budget bounds it.
	ctx, cancel := context.WithTimeout(ts.life, ts.retry.budget)
	defer cancel()
	f.res, f.err = ts.refreshLocked(ctx, storage, force)

	ts.flightMu.Lock()
	ts.flight = nil
	ts.flightMu.Unlock()
	close(f.done)
	return f.res, f.err
}

func (ts *tokenSource) refreshLocked(ctx context.Context, storage logical.Storage, force bool) (*tokenResult, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()

	// The config may have changed, or gone, since the caller read it.
	cfg, err := ts.config(ctx, storage)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, errNotConfigured
	}

	if err := ts.flushPendingLocked(ctx, storage); err != nil {
		return nil, err
	}
	cur, err := ts.load(ctx, storage, cfg)
	if err != nil {
		return nil, err
	}
	// Whoever held the lock before us may have refreshed already.
	if !force && !ts.due(cur, cfg) {
		return &tokenResult{state: cur}, nil
	}
	// A standby or performance secondary must not call WeTix: the refresh
	// token would rotate where the result cannot be stored. ErrReadOnly makes
	// Vault forward the request to the active node.
	if !ts.canWrite() {
		return nil, logical.ErrReadOnly
	}
	// Right after a failed refresh, answer from that failure rather than
	// calling WeTix again: during an outage every read would otherwise sit
	// through a full round of retries.
	if !force && ts.lastFailure != nil && ts.now().Before(ts.retryAt) {
		return ts.failed(cur, cfg, ts.lastFailure, false)
	}

	pair, err := ts.obtain(ctx, storage, cfg, cur)
	if err != nil {
		ts.recordFailure(ctx, storage, err)
		return ts.failed(ts.cachedOr(cur), cfg, err, force)
	}
	ts.lastFailure = nil
	ts.outage.Store(false)

	next := ts.cachedOr(cur).clone()
	next.apply(pair, ts.now())
	if refreshTokenNearExpiry(next, cfg, ts.now()) {
		// The answer brought no fresh refresh token and the kept one is
		// about to lapse: keeping it would make every read "due" again.
		// Drop it; the client-credentials grant needs none.
		next.RefreshToken, next.RefreshIssuedAt, next.RefreshExpiresAt = "", time.Time{}, time.Time{}
	}
	if err := writeTokenState(ctx, storage, next); err != nil {
		ts.pending = next
		ts.logger.Error("storing rotated WeTix tokens failed; keeping them in memory to store on the next attempt", "error", err)
		return nil, storageError(err)
	}
	ts.cached.Store(next)
	ts.logger.Info("WeTix token refreshed", "grant", pair.Grant, "access_expires_at", next.AccessExpiresAt.UTC().Format(time.RFC3339))
	return &tokenResult{state: next}, nil
}

// flushPendingLocked stores a pair whose earlier write failed. Nothing else
// may happen first: its refresh token may be the only live one.
func (ts *tokenSource) flushPendingLocked(ctx context.Context, storage logical.Storage) error {
	if ts.pending == nil {
		return nil
	}
	if !ts.canWrite() {
		return logical.ErrReadOnly
	}
	if err := writeTokenState(ctx, storage, ts.pending); err != nil {
		return storageError(err)
	}
	ts.cached.Store(ts.pending)
	ts.pending = nil
	return nil
}

func (ts *tokenSource) cachedOr(st *tokenState) *tokenState {
	if c := ts.cached.Load(); c != nil {
		return c
	}
	return st
}

// apply records a new pair. An answer without a refresh token keeps the old
// one: WeTix does not document whether one is always sent.
func (st *tokenState) apply(pair *client.Pair, now time.Time) {
	st.AccessToken = pair.AccessToken
	st.AccessIssuedAt = pair.IssuedAt
	st.AccessExpiresAt = pair.AccessExpiresAt
	switch {
	case pair.RefreshToken != "":
		st.RefreshToken = pair.RefreshToken
		st.RefreshIssuedAt = pair.IssuedAt
		st.RefreshExpiresAt = pair.RefreshExpiresAt
		st.RefreshSent = false
	case pair.Grant == client.GrantRefresh:
		// A refresh answer without a new refresh token means WeTix does not
		// rotate them, so the one just used is still good. If that guess is
		// wrong, the next refresh gets invalid_grant and falls back to the
		// client credentials: one extra call, nothing lost.
		st.RefreshSent = false
	case st.RefreshSent:
		// Client credentials answered without a refresh token, and the one
		// kept was already sent: it is worth nothing, so keep nothing.
		st.RefreshToken, st.RefreshIssuedAt, st.RefreshExpiresAt, st.RefreshSent = "", time.Time{}, time.Time{}, false
	}
	st.Stats.LastRefreshAt = now
	st.Stats.LastGrant = string(pair.Grant)
	st.Stats.Refreshes++
	if pair.Grant == client.GrantRefresh {
		st.Stats.RefreshGrants++
	} else {
		st.Stats.CredentialGrants++
	}
}

// obtain gets a new pair: the refresh grant at most once per refresh token,
// then the client-credentials grant, retrying transient failures within the
// deadline.
func (ts *tokenSource) obtain(ctx context.Context, storage logical.Storage, cfg *wetixConfig, cur *tokenState) (*client.Pair, error) {
	c := ts.newClient(cfg)
	useRefresh := cur.usableRefreshToken(ts.now())

	var lastErr error
	for attempt := 0; ; attempt++ {
		if useRefresh {
			pair, err := ts.tryRefresh(ctx, storage, c, cur)
			if err == nil {
				return pair, nil
			}
			var serr *storageErr
			if errors.As(err, &serr) || errors.Is(err, logical.ErrReadOnly) {
				return nil, err
			}
			if cerr, ok := client.AsError(err); ok && !cerr.Sent && cerr.Kind == client.KindTransient {
				// WeTix never saw it: the refresh token is still good, so
				// back off and try it again.
				lastErr = err
				if !ts.retry.wait(ctx, attempt, cerr.RetryAfter) {
					return nil, lastErr
				}
				continue
			}
			ts.logger.Warn("WeTix refresh grant failed; falling back to the client-credentials grant", "error", err)
			useRefresh = false
			// A transient failure (5xx, 429, timeout) says WeTix is struggling:
			// back off before asking again, even with the other grant. A
			// rejected refresh token needs no pause.
			if cerr, ok := client.AsError(err); ok && cerr.Kind == client.KindTransient {
				lastErr = err
				if !ts.retry.wait(ctx, attempt, cerr.RetryAfter) {
					return nil, lastErr
				}
			}
			continue
		}
		pair, err := c.ClientCredentials(ctx)
		if err == nil {
			return pair, nil
		}
		lastErr = err
		cerr, ok := client.AsError(err)
		if !ok || cerr.Kind != client.KindTransient {
			return nil, err
		}
		ts.logger.Warn("WeTix client-credentials grant failed; will retry", "attempt", attempt+1, "error", err)
		if !ts.retry.wait(ctx, attempt, cerr.RetryAfter) {
			return nil, lastErr
		}
	}
}

// tryRefresh marks the refresh token as sent in storage, then sends it.
func (ts *tokenSource) tryRefresh(ctx context.Context, storage logical.Storage, c grantClient, cur *tokenState) (*client.Pair, error) {
	marked := cur.clone()
	marked.RefreshSent = true
	if err := writeTokenState(ctx, storage, marked); err != nil {
		return nil, storageError(err)
	}
	ts.cached.Store(marked)
	pair, err := c.Refresh(ctx, cur.RefreshToken)
	if cerr, ok := client.AsError(err); ok && !cerr.Sent {
		// Not sent after all; the in-memory copy may use it again. Storage
		// keeps the mark, which only costs a client-credentials grant if we
		// crash now.
		ts.cached.Store(cur)
	}
	return pair, err
}

// failed decides what a read gets when no new pair could be had: the old
// token with a warning if the failure was transient and the old token outlives
// a lease, otherwise the error. A forced rotation always gets the error: its
// caller asked for a new token and must learn it did not get one.
func (ts *tokenSource) failed(cur *tokenState, cfg *wetixConfig, err error, force bool) (*tokenResult, error) {
	var serr *storageErr
	if errors.As(err, &serr) || errors.Is(err, logical.ErrReadOnly) {
		return nil, err
	}
	cerr, ok := client.AsError(err)
	if !ok {
		return nil, fmt.Errorf("refreshing the WeTix token: %w", err)
	}
	if !force && cerr.Kind == client.KindTransient && ts.servable(cur, cfg) {
		return &tokenResult{state: cur, warnings: []string{staleWarning(cur, cerr.Error())}}, nil
	}
	return nil, operatorError(cerr)
}

// recordFailure keeps the last error for the status path and the cooldown,
// which lasts at least as long as WeTix's Retry-After asked. Storing it is
// best effort: a failure to store must not mask the real error.
func (ts *tokenSource) recordFailure(ctx context.Context, storage logical.Storage, err error) {
	now := ts.now()
	wait := ts.failureCooldown
	if cerr, ok := client.AsError(err); ok && cerr.RetryAfter > wait {
		wait = cerr.RetryAfter
	}
	ts.lastFailure, ts.retryAt = err, now.Add(wait)
	if cerr, ok := client.AsError(err); ok && cerr.Kind == client.KindTransient {
		ts.outage.Store(true)
	}
	st := ts.cachedOr(&tokenState{}).clone()
	st.Stats.Failures++
	st.Stats.LastError = err.Error()
	st.Stats.LastErrorKind = errorKind(err)
	st.Stats.LastErrorAt = now
	if werr := writeTokenState(ctx, storage, st); werr == nil {
		ts.cached.Store(st)
	}
	ts.logger.Error("refreshing the WeTix token failed", "error", err)
}

// operatorError turns a grant failure into what an operator can act on.
func operatorError(cerr *client.Error) error {
	switch cerr.Kind {
	case client.KindInvalidClient:
		return fmt.Errorf("WeTix rejected the client credentials (%s). Fix them with `vault write <mount>/config client_id=... client_secret=...`", cerr.Error())
	case client.KindPermanent:
		return fmt.Errorf("WeTix refused the token request (%s). Check the OAuth URL with `vault read <mount>/config` (environment, base_url)", cerr.Error())
	case client.KindRejected:
		return fmt.Errorf("WeTix rejected the client-credentials grant as if it were a bad refresh token (%s). Check the OAuth URL with `vault read <mount>/config`", cerr.Error())
	default:
		return fmt.Errorf("WeTix is unavailable (%s) and the current access token cannot be served; try again later, `vault read <mount>/status` shows the last error", cerr.Error())
	}
}

// storageErr marks a failure to persist tokens, so that it is never
// mistaken for an upstream failure.
type storageErr struct{ err error }

func (e *storageErr) Error() string {
	return "storing the WeTix tokens failed (they are kept in memory and stored on the next attempt): " + e.err.Error()
}
func (e *storageErr) Unwrap() error { return e.err }

func storageError(err error) error {
	if errors.Is(err, logical.ErrReadOnly) {
		return logical.ErrReadOnly
	}
	return &storageErr{err: err}
}

// invalidate forgets the in-memory copy so the next read goes to storage.
// Used when storage changes underneath (a standby, a config change).
func (ts *tokenSource) invalidate() {
	ts.epoch.Add(1)
	ts.cached.Store(nil)
}

// reset discards every token under mu; the caller holds mu.
func (ts *tokenSource) resetLocked() {
	ts.pending = nil
	ts.lastFailure = nil
	ts.outage.Store(false)
	ts.cached.Store(nil)
}

// leaseMargin keeps a lease short of the token's expiry, for clock skew
// between Vault and WeTix and for the time the answer takes to reach the app.
func leaseMargin(lifetime time.Duration) time.Duration {
	m := lifetime / 20
	if m > time.Minute {
		m = time.Minute
	}
	return m
}

// errorKind names a failure for status, so advice does not depend on
// WeTix's wording.
func errorKind(err error) string {
	var serr *storageErr
	if errors.As(err, &serr) {
		return "storage"
	}
	if cerr, ok := client.AsError(err); ok {
		return cerr.Kind.String()
	}
	return "other"
}
