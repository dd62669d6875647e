package wetix

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
// A renewal never extends a lease past the point where its token stops being
// the right one to use: it is refused once the mount serves another token
// (refresh, rotate, credential change, delete) or the token is due for
// refresh, so a consumer that renews moves to the current token at its next
// renewal. WeTix does not document whether a refresh revokes the previous
// access token; assuming it may, a consumer still holding the old one after a
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

// leaseOnToken sets a lease of ttl on st's token, renewable up to the end of
// the token's leasable life (its expiry less the margin). Vault measures the
// max TTL from the lease's issue time.
func leaseOnToken(lease *logical.Secret, st *tokenState, ttl time.Duration, now time.Time) {
	lease.TTL = ttl
	lease.MaxTTL = leasable(st, now).Truncate(time.Second)
	if lease.MaxTTL < ttl {
		lease.MaxTTL = ttl
	}
	lease.Renewable = true
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
		return logical.ErrorResponse("the lease cannot be renewed: " + errNotConfigured.Error()), nil
	}
	st, err := b.tokens.current(ctx, req.Storage, cfg)
	if err != nil {
		return nil, err
	}
	issuedOn, _ := req.Secret.InternalData[leaseTokenKey].(string)
	if !st.hasAccessToken() || issuedOn == "" || issuedOn != tokenFingerprint(st.AccessToken) {
		return logical.ErrorResponse("the lease cannot be renewed: its access token has been replaced (a refresh, a rotate or a credential change); read <mount>/token again for the current one"), nil
	}
	if b.tokens.due(st, cfg) {
		return logical.ErrorResponse("the lease cannot be renewed: its access token is due for refresh; read <mount>/token again for a fresh one"), nil
	}
	now := b.now()
	ttl, ok := leaseTTL(cfg.TTL, st, now)
	if !ok {
		return logical.ErrorResponse("the lease cannot be renewed: its access token expires too soon; read <mount>/token again"), nil
	}
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
