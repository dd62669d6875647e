package wetix

import (
	"context"
	"fmt"

	"github.com/hashicorp/vault/sdk/helper/errutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// secretFields are the write-only fields that carry a secret, on any path.
var secretFields = []string{"client_secret", "refresh_token", "private_key"}

// nonStringSecret names a secret field whose value is not a string. The
// framework's type check would refuse it too, but its message quotes the
// value, and Vault puts that message in its log, in the audit log's error
// field (which is not HMACed) and in the answer.
func nonStringSecret(req *logical.Request) error {
	for _, f := range secretFields {
		if v, ok := req.Data[f]; ok {
			if _, isString := v.(string); !isString {
				return errutil.UserError{Err: fmt.Sprintf("%s must be a string (the value as issued, or a PEM text); its value is not repeated here", f)}
			}
		}
	}
	return nil
}

// HandleExistenceCheck refuses a non-string secret before the framework
// validates the request (see nonStringSecret).
func (b *backend) HandleExistenceCheck(ctx context.Context, req *logical.Request) (bool, bool, error) {
	if err := nonStringSecret(req); err != nil {
		return false, false, err
	}
	return b.Backend.HandleExistenceCheck(ctx, req)
}

// HandleRequest refuses a non-string secret before the framework validates
// the request (see nonStringSecret).
func (b *backend) HandleRequest(ctx context.Context, req *logical.Request) (*logical.Response, error) {
	if err := nonStringSecret(req); err != nil {
		return logical.ErrorResponse(err.Error()), logical.ErrInvalidRequest
	}
	return b.Backend.HandleRequest(ctx, req)
}
