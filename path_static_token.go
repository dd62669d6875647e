package wetix

import (
	"context"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// staticTokenPath is the unleased read. Vault's engines that rotate a shared
// credential themselves serve it under a "static-" name without a lease
// (database static-creds/:name, LDAP static-cred/:name); this mount holds
// one credential, so there is no role name, and the noun stays the one the
// leased path uses: static-token next to token.
const staticTokenPath = "static-token"

func pathStaticToken(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: staticTokenPath,
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "wetix",
			OperationVerb:   "read",
			OperationSuffix: "static-access-token",
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathStaticTokenRead,
				Summary:  "Get the mount's current WeTix access token without a lease, with how long it stays current.",
				Responses: map[int][]framework.Response{
					200: {{Description: "OK", Fields: staticTokenResponseFields}},
				},
			},
		},
		HelpSynopsis:    "Read the current WeTix access token without a lease, as a rotating static credential.",
		HelpDescription: strings.TrimSpace(staticTokenHelp),
	}
}

var staticTokenResponseFields = map[string]*framework.FieldSchema{
	"access_token": tokenResponseFields["access_token"],
	"token_type":   tokenResponseFields["token_type"],
	"expires_at":   {Type: framework.TypeTime, Description: "When WeTix stops accepting the access token (RFC 3339). ttl always ends before it."},
	"ttl": {Type: framework.TypeInt, Description: "Whole seconds (rounded up) until the token is due for replacement: a read at or after that gets the next one. It always ends a margin before expires_at, and is never negative. " +
		"Vault Agent and consul-template re-read at ttl + 1 s, the Vault Secrets Operator at ttl + 0.5 s. 0 while the token is already due and served with a warning (WeTix unreachable, or a client secret change pending)."},
	"rotation_period":     {Type: framework.TypeInt, Description: "Whole seconds between obtaining a token and replacing it, as the mount computes it from the token's lifetime and the configured ttl (at least 1)."},
	"last_vault_rotation": {Type: framework.TypeTime, Description: "When the plugin obtained the current access token from WeTix (RFC 3339)."},
}

const staticTokenHelp = `
Returns the mount's current WeTix access token without a lease: access_token,
token_type and expires_at, plus ttl, rotation_period and last_vault_rotation
in the shape of Vault's database static-creds. ttl is the whole seconds
(rounded up) until the token is due for replacement: a read at or after that
gets the next one. Vault Agent and consul-template templates re-read such an
answer ttl + 1 seconds later, and the Vault Secrets Operator
(VaultDynamicSecret with allowStaticCreds: true) at ttl + 0.5 s, so they move
to the next token by themselves. A read creates no lease, so Vault writes and
keeps nothing per read, whatever the read rate; nothing can be renewed or
revoked either. The token is the same one the token path serves, under the
same rules: refreshed once for the whole mount when due, served with a warning
(and ttl 0) while WeTix is unreachable and the token is still good for a full
ttl, otherwise an error naming the fix. Apps that read it themselves must read
again once ttl has passed. The client secret and the refresh token are never
returned.
`

func (b *backend) pathStaticTokenRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	served, errResp, err := b.serveToken(ctx, req, readUnleased, staticFit)
	if errResp != nil || err != nil {
		return errResp, err
	}
	st := served.res.state
	data := tokenData(st)
	// Integers, not the float64 seconds the database engine happens to
	// send: consul-template and VSO decode these fields as json.Number and
	// take them only when Int64 succeeds.
	data["ttl"] = int64(served.ttl / time.Second)
	data["rotation_period"] = int64(rotationPeriod(st, served.cfg) / time.Second)
	data["last_vault_rotation"] = st.AccessIssuedAt.UTC().Format(time.RFC3339)
	resp := &logical.Response{Data: data}
	addWarnings(resp, served.res)
	return resp, nil
}

// staticFit is the unleased path's ttl: the whole seconds until the token
// is due, rounded up, so that a consumer re-reading ttl seconds later (or
// later still) gets the next token. Rounding down would be wrong: the Vault
// Secrets Operator re-reads at ttl + 0.5 s and, when the answer's token has
// not changed, keeps the ttl of the previous changed answer
// (vaultdynamicsecret_controller.go, syncSecret returns before storing the
// new StaticCredsMetaData when the data's HMAC is equal), so a re-read that
// arrives a fraction of a second before the due instant would make it hold
// the token for a whole rotation period more, past its expiry.
//
// A due token (served during an outage) gets 0, as database static-creds
// answers for an overdue rotation: consul-template then re-reads after 1 s
// (ttl + 1) and VSO after 1 s, and both pick up the next token soon after
// WeTix is back. The ttl never reaches past the lease margin before
// expires_at; ok is false when not even 1 s is left before it, as for a
// lease.
func staticFit(st *tokenState, cfg *wetixConfig, now time.Time) (time.Duration, bool) {
	left := leasable(st, now).Truncate(time.Second)
	if left < minLease {
		return 0, false
	}
	return min(ceilSeconds(dueAt(st, cfg).Sub(now)), left), true
}

// rotationPeriod is how long after it was obtained a token of st's
// lifetime is replaced under cfg when nothing else intervenes: the access
// token's own rules, not a refresh token nearing its end or a secret change,
// which are one-off events rather than the mount's rhythm. Rounded as ttl
// is, so that a fresh token's ttl never exceeds it.
func rotationPeriod(st *tokenState, cfg *wetixConfig) time.Duration {
	return max(ceilSeconds(accessDueAt(st, cfg).Sub(st.AccessIssuedAt)), time.Second)
}

// ceilSeconds rounds d up to whole seconds, and anything not positive to 0.
func ceilSeconds(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	if r := d.Truncate(time.Second); r != d {
		return r + time.Second
	}
	return d
}
