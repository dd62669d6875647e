package wetix

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// strict wraps a write callback so that a field the path does not know is
// refused, naming it and the known ones. The SDK only warns about unknown
// fields, and drops even that warning when the write answers nothing: a
// mistyped `clinet_secret=NEW` would read "Success!" and change nothing,
// which during a secret change is an outage waiting to happen.
//
// undeclared names fields the callback reads from the raw request although
// no framework type can declare them (sign's input: an object or a string).
func strict(cb framework.OperationFunc, undeclared ...string) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		if resp := refuseUnknownFields(d, undeclared); resp != nil {
			return resp, logical.ErrInvalidRequest
		}
		return cb(ctx, req, d)
	}
}

func refuseUnknownFields(d *framework.FieldData, undeclared []string) *logical.Response {
	var unknown []string
	for k := range d.Raw {
		if _, ok := d.Schema[k]; !ok && !slices.Contains(undeclared, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	sort.Strings(unknown)
	known := append([]string{}, undeclared...)
	for k := range d.Schema {
		known = append(known, k)
	}
	sort.Strings(known)
	what := "this path takes no fields"
	if len(known) > 0 {
		what = "the fields it knows are " + strings.Join(known, ", ")
	}
	return logical.ErrorResponse(fmt.Sprintf("unknown field(s) %s: nothing was changed; %s (see `vault path-help` for this path)", strings.Join(unknown, ", "), what))
}
