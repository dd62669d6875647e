package wetix

import (
	"context"
	"errors"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

func pathRotate(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "rotate",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "wetix",
			OperationVerb:   "rotate",
			OperationSuffix: "token",
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback: strict(b.pathRotateWrite),
				Summary:  "Replace the access and refresh tokens now.",
				// A rotation must run where storage can be written.
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				Responses: map[int][]framework.Response{
					200: {{Description: "OK", Fields: statusFields}},
				},
			},
		},
		HelpSynopsis:    "Force a refresh of the WeTix tokens now.",
		HelpDescription: strings.TrimSpace(rotateHelp),
	}
}

const rotateHelp = `
Replaces the access token and the refresh token now, for example after a
suspected leak: the refresh grant first, the client-credentials grant if that
fails, as for any refresh. Answers with the status (no tokens). Leases already
handed out keep their token until they end; WeTix offers no way to revoke it.
`

func (b *backend) pathRotateWrite(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.configFor(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return logical.ErrorResponse(errNotConfigured.Error()), nil
	}
	res, err := b.tokens.refresh(ctx, req.Storage, true)
	if errors.Is(err, errNotConfigured) {
		return logical.ErrorResponse(errNotConfigured.Error()), nil
	}
	if err != nil {
		return nil, err
	}
	resp, err := b.statusResponse(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	for _, w := range res.warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}
