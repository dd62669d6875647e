package wetix

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathToken(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "token",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "wetix",
			OperationVerb:   "generate",
			OperationSuffix: "access-token",
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback: b.pathTokenRead,
				Summary:  "Get a valid WeTix access token as a leased secret.",
				Responses: map[int][]framework.Response{
					200: {{Description: "OK", Fields: tokenResponseFields}},
				},
			},
		},
		HelpSynopsis:    "Read a valid WeTix access token.",
		HelpDescription: strings.TrimSpace(tokenHelp),
	}
}

var tokenResponseFields = map[string]*framework.FieldSchema{
	"access_token": {Type: framework.TypeString, Description: "The WeTix Open API access token (a JWT); send it as Authorization: Bearer <access_token>."},
	"token_type":   {Type: framework.TypeString, Description: `Always "Bearer".`},
	"expires_at":   {Type: framework.TypeTime, Description: "When WeTix stops accepting the access token (RFC 3339). The lease always ends before it."},
}

const tokenHelp = `
Returns the mount's current WeTix access token as a leased, renewable secret:
access_token, token_type and expires_at. Reads of a token that is not close to
expiry are answered from memory with no call to WeTix. When the token is due,
one refresh runs for the whole mount and every waiting read is served from it.
The lease TTL is the configured ttl, shortened so that no lease outlives its
token. Renewing the lease extends it by up to ttl while its token is still the
one the mount serves and can still carry a full ttl lease (margin included);
otherwise the renewal is refused, and the consumer reads again to get the
current token (Vault Agent, Vault Proxy and the Vault Secrets Operator do this
by themselves). A lease cut short near its token's end is not renewable. Revoking a
lease does nothing at WeTix (it has no revocation endpoint) and does not affect
other readers. The client secret and the refresh token are never returned.
`

func (b *backend) pathTokenRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.configFor(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return logical.ErrorResponse(errNotConfigured.Error()), nil
	}
	// A token checked a moment ago may have run out of lease since (a read
	// that waited for a refresh during an outage): ask once more, and the
	// lifecycle treats it as due.
	var res *tokenResult
	var ttl time.Duration
	for attempt := 0; ; attempt++ {
		res, err = b.tokens.get(ctx, req.Storage, cfg)
		if errors.Is(err, errNotConfigured) {
			// The config was deleted while this read waited for a refresh.
			return logical.ErrorResponse(errNotConfigured.Error()), nil
		}
		if err != nil {
			return nil, err
		}
		var ok bool
		if ttl, ok = leaseTTL(cfg.TTL, res.state, b.now()); ok {
			break
		}
		if attempt == 1 {
			// Only a token WeTix issued with (almost) no life gets here.
			return nil, fmt.Errorf("the access token WeTix issued expires at %s, too soon to lease; check the clocks of Vault and WeTix, and `vault read <mount>/status`", res.state.AccessExpiresAt.UTC().Format(time.RFC3339))
		}
	}
	st := res.state
	if res.staleReason != "" {
		b.tokens.noteStaleServe(res.staleReason)
	}
	resp := b.Secret(secretAccessTokenType).Response(map[string]interface{}{
		"access_token": st.AccessToken,
		"token_type":   "Bearer",
		"expires_at":   st.AccessExpiresAt.UTC().Format(time.RFC3339),
	}, map[string]interface{}{leaseTokenKey: b.tokens.fingerprintOf(st.AccessToken)})
	leaseOnToken(resp.Secret, st, cfg, ttl, b.now())
	for _, w := range res.warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}
