package wetix

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const secretAccessTokenType = "wetix_access_token"

// leaseTokenKey names, in a lease's internal data, the fingerprint of the
// access token the lease was issued on. Vault keeps internal data with the
// lease and never returns it; a fingerprint, not the token, so that the
// renewal path never handles the secret itself.
const leaseTokenKey = "access_token_sha256"

// Leases are renewable so that Vault Proxy and Vault Agent's cache keep one
// lease per consumer token and renew it, instead of passing every read
// through to Vault (they cache only renewable secrets): measured in
// docs/scale.md, a read-per-request app behind a caching Proxy holds 1 lease
// where a direct one holds reads/s x ttl.
//
// A renewal is granted exactly when a read would hand out the same token on
// a full ttl lease: the lease's token is still the mount's and can still
// carry ttl (margin included). It is refused once the mount holds another
// token (refresh, rotate, credential change, delete) or the token is too close
// to its end, so a consumer that renews moves to the current token at its
// next renewal, and a due token is refreshed by that consumer's read or by
// the periodic tick. A due token that reads still serve (a secret change
// pending, WeTix down in the refresh window) stays renewable: refusing would
// send Agent and VSO into a read/renew loop on the very token the read gives
// them. A lease that could not be renewed at once (a token leased short near
// its end) is issued non-renewable, so its consumer re-reads near the lease's
// end as before instead of renewing, being refused and re-reading within the
// same second (which Agent ignores).
//
// WeTix does not document whether a refresh revokes the previous access
// token; assuming it may, a consumer still holding the old one after a
// refresh holds it at most until its current lease ends, which is what a
// non-renewable lease of the same ttl allows too.
func secretAccessToken(b *backend) *framework.Secret {
	return &framework.Secret{
		Type:   secretAccessTokenType,
		Fields: tokenResponseFields,
		Renew:  b.renewAccessTokenLease,
		// WeTix has no revocation endpoint, and the token is shared by every
		// reader of the mount: revoking one lease must not touch it.
		Revoke: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
			return nil, nil
		},
	}
}

func tokenFingerprint(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return hex.EncodeToString(sum[:])
}

type fingerprintMemo struct{ token, sum string }

// fingerprintOf is tokenFingerprint, computed once per token: a token is
// served for weeks, and a read should not hash it again each time.
func (ts *tokenSource) fingerprintOf(accessToken string) string {
	if m := ts.fingerprint.Load(); m != nil && m.token == accessToken {
		return m.sum
	}
	m := &fingerprintMemo{token: accessToken, sum: tokenFingerprint(accessToken)}
	ts.fingerprint.Store(m)
	return m.sum
}

// leaseOnToken sets a lease of ttl on st's token: renewable up to the end of
// the token's leasable life (its expiry less the margin) when a renewal in
// the next agentSafeLease would be granted, else not renewable. Vault measures the max TTL from the
// lease's issue time.
func leaseOnToken(lease *logical.Secret, st *tokenState, cfg *wetixConfig, ttl time.Duration, now time.Time) {
	lease.TTL = ttl
	lease.MaxTTL = ttl
	lease.Renewable = issuedRenewable(st, cfg, now)
	if lease.Renewable {
		lease.MaxTTL = max(ttl, leasable(st, now).Truncate(time.Second))
	}
}

// issuedRenewable: a lease is issued renewable only if it stays renewable for
// agentSafeLease. Agent renews the moment it holds a lease and, refused,
// reads again within the same second, a read it then ignores: a lease
// renewable by a few milliseconds would leave the file on the old token.
func issuedRenewable(st *tokenState, cfg *wetixConfig, now time.Time) bool {
	return carriesTTL(st, cfg, now.Add(agentSafeLease))
}

// refuseRenewal is a 400 whose text Vault shows as is; an error response
// would reach the CLI formatted as a Go struct.
func refuseRenewal(why string) error {
	return logical.CodedError(http.StatusBadRequest, "the lease cannot be renewed: "+why)
}

// renewAccessTokenLease extends a lease by up to ttl, answering only from
// what the mount already holds: a renewal never calls WeTix. Refusals are
// errors (not 500s) naming what to do: read the token again.
func (b *backend) renewAccessTokenLease(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.configFor(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, refuseRenewal(errNotConfigured.Error())
	}
	st, err := b.tokens.current(ctx, req.Storage, cfg)
	if err != nil {
		return nil, err
	}
	issuedOn, _ := req.Secret.InternalData[leaseTokenKey].(string)
	if !st.hasAccessToken() || issuedOn == "" || issuedOn != b.tokens.fingerprintOf(st.AccessToken) {
		return nil, refuseRenewal("its access token has been replaced (a refresh, a rotate or a credential change); read <mount>/token again for the current one")
	}
	now := b.now()
	if !carriesTTL(st, cfg, now) {
		return nil, refuseRenewal("its access token is too close to its expiry to be leased for the mount's ttl again; read <mount>/token again for a fresh one")
	}
	ttl, _ := leaseTTL(cfg.TTL, st, now)
	if inc := req.Secret.Increment; inc >= minLease && inc < ttl {
		ttl = inc.Truncate(time.Second)
	}
	// Data stays empty: Vault would return it in the renewal's answer, and the
	// access token belongs only in the token read's data.
	lease := *req.Secret
	lease.TTL = ttl
	// Vault caps an increment at IssueTime + MaxTTL; cap it at this renewal's
	// ttl so that a large increment cannot hold the token longer than the
	// operator's ttl allows.
	lease.MaxTTL = now.Truncate(time.Second).Add(ttl).Sub(req.Secret.IssueTime.Truncate(time.Second))
	lease.Renewable = true
	return &logical.Response{Secret: &lease}, nil
}
