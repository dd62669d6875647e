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
	"ttl": {Type: framework.TypeInt, Description: "Whole seconds until the token is due for replacement (a margin before expires_at, never past it): read again after that to get the next one. " +
		"Vault Agent and consul-template re-read at ttl + 1 s, the Vault Secrets Operator at ttl + 0.5 s. 1 while the token is already due (WeTix unreachable, or a client secret change pending)."},
	"rotation_period":     {Type: framework.TypeInt, Description: "Whole seconds between obtaining a token and replacing it, as the mount computes it from the token's lifetime and the configured ttl (at least 1)."},
	"last_vault_rotation": {Type: framework.TypeTime, Description: "When the plugin obtained the current access token from WeTix (RFC 3339)."},
}

const staticTokenHelp = `
Returns the mount's current WeTix access token without a lease: access_token,
token_type and expires_at, plus ttl, rotation_period and last_vault_rotation
in the shape of Vault's database static-creds. Vault Agent and consul-template
templates re-read such an answer ttl + 1 seconds later, and the Vault Secrets
Operator (VaultDynamicSecret with allowStaticCreds: true) at ttl + 0.5 s, so
they move to the next token by themselves. A read creates no lease, so Vault
writes and keeps nothing per read, whatever the read rate; nothing can be
renewed or revoked either. The token is the same one the token path serves,
under the same rules: refreshed once for the whole mount when due, served with
a warning while WeTix is unreachable and the token is still good for a full
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

// staticFit is the unleased path's ttl: until the token is due, cut at the
// lease margin before its expiry, in whole seconds. It is at least 1 s,
// also for a due token served during an outage: consul-template before
// v0.42 takes a ttl of 0 as "no ttl" and waits its 5-minute default, long
// enough to keep a short token rendered past its end; 1 makes it re-read
// 2 s later and pick up the next token soon after WeTix is back. ok is false
// when not even 1 s is left before the margin, as for a lease.
func staticFit(st *tokenState, cfg *wetixConfig, now time.Time) (time.Duration, bool) {
	left := leasable(st, now).Truncate(time.Second)
	if left < minLease {
		return 0, false
	}
	ttl := dueAt(st, cfg).Sub(now).Truncate(time.Second)
	return min(max(ttl, minLease), left), true
}

// rotationPeriod is how long after it was obtained a token of st's
// lifetime is replaced under cfg when nothing else intervenes: the access
// token's own rules, not a refresh token nearing its end or a secret change,
// which are one-off events rather than the mount's rhythm.
func rotationPeriod(st *tokenState, cfg *wetixConfig) time.Duration {
	p := accessDueAt(st, cfg).Sub(st.AccessIssuedAt).Truncate(time.Second)
	return max(p, time.Second)
}
