package wetix

import (
	"context"
	"errors"
	"maps"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/client"
)

// refreshLocked is one refresh: under mu, from the state loaded under mu.
func (ts *tokenSource) refreshLocked(ctx context.Context, storage logical.Storage, force bool) outcome {
	ts.mu.Lock()
	defer ts.mu.Unlock()

	// The config may have changed, or gone, since the caller read it.
	cfg, err := ts.configs.get(ctx, storage)
	if err != nil {
		return outcome{err: err}
	}
	if cfg == nil {
		return outcome{err: errNotConfigured}
	}
	if err := ts.flushPendingLocked(ctx, storage); err != nil {
		// Storage is still failing: the current token is served through
		// it, as on the write that first failed.
		cur, _ := ts.loadLocked(ctx, storage, cfg)
		return outcome{cfg: cfg, base: cur, err: err}
	}
	cur, err := ts.loadLocked(ctx, storage, cfg)
	if err != nil {
		return outcome{cfg: cfg, err: err}
	}
	out := outcome{cfg: cfg, base: cur}
	// Whoever held the lock before us may have refreshed already.
	if !force && !ts.due(cur, cfg) {
		out.fresh = cur
		return out
	}
	// A standby or performance secondary must not call WeTix: the refresh
	// token would rotate where the result cannot be stored. ErrReadOnly makes
	// Vault forward the request to the active node.
	if !ts.canWrite() {
		out.err = logical.ErrReadOnly
		return out
	}
	// Right after a failed refresh, answer from that failure rather than
	// calling WeTix again: during an outage every read would otherwise sit
	// through a full round of retries.
	if f := ts.failure.Load(); !force && f != nil && ts.now().Before(f.retryAt) {
		out.err = f.err
		return out
	}

	// base follows what storage holds as the refresh goes: the sent mark
	// goes on before the refresh token leaves, and stays on once it may
	// have reached WeTix.
	base := cur
	pair, err := ts.obtain(ctx, storage, cfg, &base)
	if context.Cause(ctx) == errSuperseded {
		// Not WeTix's failure, and whatever came back belongs to the old
		// config; the sent mark (in base) is already stored.
		ts.cache.set(base)
		return outcome{superseded: true}
	}
	if err != nil {
		out.base = ts.recordFailureLocked(ctx, storage, base, err)
		out.err = err
		return out
	}
	ts.failure.Store(nil)

	next := base.clone()
	next.replaceWith(pair, cfg, ts.now())
	if refreshTokenNearExpiry(next, cfg, ts.now()) {
		// The answer brought no fresh refresh token and the kept one is
		// about to lapse: keeping it would make every read "due" again.
		// Drop it; the client-credentials grant needs none.
		next.RefreshToken, next.RefreshIssuedAt, next.RefreshExpiresAt = "", time.Time{}, time.Time{}
	}
	stored, err := ts.storeLocked(ctx, storage, next)
	if err != nil {
		ts.setPendingLocked(next)
		ts.logger.Error("storing rotated WeTix tokens failed; keeping them in memory to store on the next attempt", "error", err)
		out.err = storageError(err, true)
		return out
	}
	ts.logger.Info("WeTix token refreshed", "grant", pair.Grant, "access_expires_at", next.AccessExpiresAt.UTC().Format(time.RFC3339))
	out.fresh = stored
	return out
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
	// The pair's counts are those of the entry it was built from; writes
	// since (stale serves, failures) raised the stored ones, and counters
	// must not go back. No refresh can have run meanwhile (each flushes
	// first), so each stored count is either the pair's or a later one.
	pending := ts.pending
	stored := ts.cache.get()
	if stored == nil {
		// The pair's refresh token may be the only live one, so it is
		// stored even when the counts to keep cannot be read: a count that
		// goes back is the lesser harm.
		stored, _ = readTokenState(ctx, storage)
	}
	for _, known := range []*tokenState{stored, ts.lastStored} {
		if known != nil {
			pending = pending.withCountsAtLeast(known)
		}
	}
	if _, err := ts.storeLocked(ctx, storage, pending); err != nil {
		return storageError(err, true)
	}
	ts.setPendingLocked(nil)
	return nil
}

// obtain gets a new pair: the refresh grant at most once per refresh token,
// then the client-credentials grant, retrying transient failures within the
// deadline. *base tracks what storage holds (the sent mark).
func (ts *tokenSource) obtain(ctx context.Context, storage logical.Storage, cfg *wetixConfig, base **tokenState) (*client.Pair, error) {
	c := ts.newClient(cfg)
	// After a secret change the refresh token is left alone: if WeTix
	// rejects the new secret, a refresh call would have spent it for
	// nothing, and the client-credentials grant proves the new secret as
	// well.
	useRefresh := (*base).usableRefreshToken(ts.now()) && !(*base).secretPending(cfg)

	var lastErr error
	for attempt := 0; ; attempt++ {
		if useRefresh {
			pair, err := ts.tryRefresh(ctx, storage, c, base)
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

// tryRefresh stores the sent mark, then sends the refresh token.
func (ts *tokenSource) tryRefresh(ctx context.Context, storage logical.Storage, c grantClient, base **tokenState) (*client.Pair, error) {
	refreshToken := (*base).RefreshToken
	marked := (*base).clone()
	marked.RefreshSent = true
	marked, err := ts.storeLocked(ctx, storage, marked)
	if err != nil {
		// Nothing was sent and no new tokens exist: the stored state is
		// unchanged, or carries a mark that only costs a client-credentials
		// grant.
		return nil, storageError(err, false)
	}
	*base = marked
	pair, err := c.Refresh(ctx, refreshToken)
	if cerr, ok := client.AsError(err); ok && !cerr.Sent {
		// Not sent after all; it may be used again. Storage keeps the mark
		// until the next write, which only costs a client-credentials grant
		// if we crash now. What the mark's write stored besides (counts)
		// stays.
		restored := marked.clone()
		restored.RefreshSent = false
		*base = restored
		ts.cache.set(restored)
	}
	return pair, err
}

// replaceWith records a pair obtained under cfg. A pair that completes a
// secret change retires the previous secret's refresh token with it.
func (st *tokenState) replaceWith(pair *client.Pair, cfg *wetixConfig, now time.Time) {
	if st.secretPending(cfg) {
		st.RefreshToken, st.RefreshIssuedAt, st.RefreshExpiresAt, st.RefreshSent = "", time.Time{}, time.Time{}, false
		st.SecretSerial = cfg.SecretSerial
	}
	st.apply(pair, now)
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

// maxCooldown caps how long a Retry-After may stop all calls to WeTix. A
// misconfigured proxy answering "Retry-After: 86400" must not take the mount
// down for a day after WeTix has recovered; a few minutes of restraint are
// what any server asking for one can reasonably expect.
const maxCooldown = 5 * time.Minute

// retryAtFor is when WeTix may be asked again after err: the cooldown, or
// the Retry-After WeTix asked for, up to maxCooldown.
func (ts *tokenSource) retryAtFor(err error, now time.Time) time.Time {
	wait := ts.failureCooldown
	if cerr, ok := client.AsError(err); ok && cerr.RetryAfter > wait {
		wait = min(cerr.RetryAfter, maxCooldown)
	}
	return now.Add(wait)
}

// recordFailureLocked keeps the failure for the cooldown and stale serving,
// and its text for status, on top of base (what storage holds). Storing it
// is best effort: a failure to store must not mask the real error. It
// returns the state now current.
func (ts *tokenSource) recordFailureLocked(ctx context.Context, storage logical.Storage, base *tokenState, err error) *tokenState {
	now := ts.now()
	ts.failure.Store(&refreshFailure{err: err, retryAt: ts.retryAtFor(err, now)})
	st := base.clone()
	st.Stats.Failures++
	// clone shares the map with base, which readers may hold.
	st.Stats.FailuresByKind = maps.Clone(st.Stats.FailuresByKind)
	if st.Stats.FailuresByKind == nil {
		st.Stats.FailuresByKind = map[string]uint64{}
	}
	st.Stats.FailuresByKind[errorKind(err)]++
	st.Stats.LastError = err.Error()
	st.Stats.LastErrorKind = errorKind(err)
	st.Stats.LastErrorAt = now
	ts.logger.Error("refreshing the WeTix token failed", "error", err)
	stored, werr := ts.storeLocked(ctx, storage, st)
	if werr != nil {
		// Storage still holds base (or base with the sent mark, which is the
		// safe side); so does memory.
		ts.cache.set(base)
		return base
	}
	return stored
}
