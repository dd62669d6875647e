package wetix

import (
	"context"
	"strings"

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
	served, errResp, err := b.serveToken(ctx, req, readLeased, leaseFit)
	if errResp != nil || err != nil {
		return errResp, err
	}
	st := served.res.state
	resp := b.Secret(secretAccessTokenType).Response(tokenData(st),
		map[string]interface{}{leaseTokenKey: b.tokens.fingerprintOf(st.AccessToken)})
	leaseOnToken(resp.Secret, st, served.cfg, served.ttl, b.now())
	addWarnings(resp, served.res)
	return resp, nil
}
