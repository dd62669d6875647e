package wetix

import (
	"time"
)

// minLease is the shortest lease Vault can honour: TTLs are whole seconds,
// and zero means "the mount's default", which could outlive the token.
const minLease = time.Second

// agentSafeLease is the shortest lease served while a longer one is possible.
// Vault Agent re-reads at about 90% of a lease, and consul-template ignores a
// fetch whose index (a Vault read's index is the Unix second) equals the
// previous one: after a 1-second lease Agent re-reads within the same second
// and keeps the old token rendered, past its expiry.
const agentSafeLease = 2 * time.Second

// leaseFloor is the shortest lease a token of this lifetime is served on;
// below it the token is due.
func leaseFloor(lifetime time.Duration) time.Duration {
	if lifetime-leaseMargin(lifetime) > agentSafeLease {
		return agentSafeLease
	}
	return minLease
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

// refreshWindowOf is the end of a token's life in which it is refreshed
// whatever the ttl: 10%, so 6 of WeTix's 60 days.
func refreshWindowOf(lifetime time.Duration) time.Duration {
	return time.Duration(float64(lifetime) * refreshWindow)
}

// carriesFullLeases says whether a token of this lifetime can be handed out
// on full ttl leases for at least the refresh window's worth of its life.
// Such a token is refreshed while it can still carry a full lease, so with
// WeTix healthy every lease is exactly ttl. Any other token keeps the 10%
// window and gets leases cut near its end (never under leaseFloor): the
// full-lease rule would make it due almost as soon as it is issued, one
// refresh per read (measured: 19 calls in 19 one-second reads of 19-second
// tokens with ttl=18s).
func carriesFullLeases(lifetime, ttl time.Duration) bool {
	return lifetime-leaseMargin(lifetime)-ttl >= refreshWindowOf(lifetime)
}

// leasable is how long a lease on st may last from now.
func leasable(st *tokenState, now time.Time) time.Duration {
	return st.accessRemaining(now) - leaseMargin(st.accessLifetime())
}

// due says whether the access token should be replaced before being served:
// missing; obtained with a client secret the config has since replaced; too
// close to expiry for a lease of leaseFloor; unable to carry a full ttl
// lease although its lifetime allows one (carriesFullLeases), so that with
// WeTix healthy leases are exactly ttl; inside the refresh window at the end
// of its life; or with a refresh token close to its own expiry. The rules
// are written once, as the instant they start to hold (dueAt), so that the
// unleased path's ttl and this test cannot disagree.
func (ts *tokenSource) due(st *tokenState, cfg *wetixConfig) bool {
	return !ts.now().Before(dueAt(st, cfg))
}

// dueAt is the first instant at which st is due; the zero time when it is
// due whatever the clock says (no token, or a secret change pending).
func dueAt(st *tokenState, cfg *wetixConfig) time.Time {
	if !st.hasAccessToken() || st.secretPending(cfg) {
		return time.Time{}
	}
	at := accessDueAt(st, cfg)
	if r, ok := refreshTokenDueAt(st); ok && r.Before(at) {
		at = r
	}
	return at
}

// accessDueAt is when the access token's own rules make it due. The lease
// rules are strict ("less than"), hence the nanosecond: due starts just
// after the instant where exactly the floor, or exactly ttl, is left.
func accessDueAt(st *tokenState, cfg *wetixConfig) time.Time {
	life := st.accessLifetime()
	margin := leaseMargin(life)
	at := st.AccessExpiresAt.Add(-margin - leaseFloor(life) + time.Nanosecond)
	if carriesFullLeases(life, cfg.TTL) {
		if full := st.AccessExpiresAt.Add(-margin - cfg.TTL + time.Nanosecond); full.Before(at) {
			at = full
		}
	}
	if window := st.AccessExpiresAt.Add(-refreshWindowOf(life)); window.Before(at) {
		at = window
	}
	return at
}

// servable says whether a due token may still be handed out while WeTix
// fails: it outlives a full lease, margin included.
func (ts *tokenSource) servable(st *tokenState, cfg *wetixConfig) bool {
	return carriesTTL(st, cfg, ts.now())
}

// carriesTTL: the token can carry a whole ttl lease from now, margin
// included. It is what a due token needs to be served (servable) and what a
// lease needs to be renewed (secret_access_token.go), so that a renewal is
// granted exactly while a read would hand out the same token on a full
// lease.
func carriesTTL(st *tokenState, cfg *wetixConfig, now time.Time) bool {
	return st.hasAccessToken() && !now.After(fullLeaseUntil(st, cfg))
}

// fullLeaseUntil is the last instant st can carry a whole ttl lease, margin
// included: past it a due token is no longer served (whatever WeTix says)
// and its leases are no longer renewed.
func fullLeaseUntil(st *tokenState, cfg *wetixConfig) time.Time {
	return st.AccessExpiresAt.Add(-leaseMargin(st.accessLifetime()) - cfg.TTL)
}

// servedUntil is the last instant a read still gets st if no refresh
// succeeds before then (WeTix down, say): the later of fullLeaseUntil (a due
// token is served through the failure until then) and the last instant it
// is not due (a token that is not due is served, on a cut lease if need be).
// The second is later only for a token too short-lived to carry full ttl
// leases (carriesFullLeases), which is due only in its refresh window. It is
// the one "served until" that status, the metrics and the docs share.
func servedUntil(st *tokenState, cfg *wetixConfig) time.Time {
	until := fullLeaseUntil(st, cfg)
	if d := dueAt(st, cfg); !d.IsZero() && d.Add(-time.Nanosecond).After(until) {
		until = d.Add(-time.Nanosecond)
	}
	return until
}

// leaseTTL is the configured ttl cut short so that the lease ends a margin
// before the access token does, in whole seconds. ok is false when not even
// minLease fits: such a token cannot be leased honestly.
func leaseTTL(ttl time.Duration, st *tokenState, now time.Time) (time.Duration, bool) {
	if left := leasable(st, now); left < ttl {
		ttl = left
	}
	ttl = ttl.Truncate(time.Second)
	return ttl, ttl >= minLease
}

// refreshTokenNearExpiry is what keeps an idle mount alive: the periodic
// function refreshes early when the refresh token itself nears its end, so
// months without a read never strand the credential.
func refreshTokenNearExpiry(st *tokenState, _ *wetixConfig, now time.Time) bool {
	at, ok := refreshTokenDueAt(st)
	return ok && !now.Before(at)
}

// refreshTokenDueAt is when the refresh token enters its own refresh
// window; ok is false when there is none, or WeTix gave it no lifetime.
func refreshTokenDueAt(st *tokenState) (time.Time, bool) {
	if st.RefreshToken == "" || st.RefreshExpiresAt.IsZero() || st.RefreshIssuedAt.IsZero() {
		return time.Time{}, false
	}
	lifetime := st.RefreshExpiresAt.Sub(st.RefreshIssuedAt)
	return st.RefreshExpiresAt.Add(-refreshWindowOf(lifetime)), true
}
