package wetix

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature"
)

// maxSignInputBytes bounds the input argument. A WeTix order is about 1 KiB;
// 64 KiB leaves room for large orders while keeping one sign cheap.
const maxSignInputBytes = 64 << 10

const (
	// A timestamp above this is in milliseconds (it is in year 5138 as seconds).
	maxUnixSeconds = 1e11
	// signSkewWarning: a caller-given timestamp further than this from
	// Vault's clock gets a warning; WeTix may refuse it as stale.
	signSkewWarning = 5 * time.Minute
)

var signFields = map[string]*framework.FieldSchema{
	"mutation": {
		Type:          framework.TypeString,
		Description:   `The mutation the input belongs to: "createMovieOrder" or "confirmMovieOrder".`,
		AllowedValues: []interface{}{signature.CreateMovieOrder, signature.ConfirmMovieOrder},
	},
	"timestamp": {
		Type:        framework.TypeInt64,
		Description: "Unix seconds to sign with; default: Vault's clock now.",
	},
	"include_plaintext": {
		Type:        framework.TypeBool,
		Description: "Also return the plaintext that was signed, for debugging. Off by default: it holds the order's customer data.",
		Default:     false,
	},
	// "input" is deliberately not declared here: it may be a JSON object or
	// a JSON string, and the framework has no field type that accepts both
	// (TypeMap refuses a string, TypeString an object) before the handler
	// runs. The path takes arbitrary input and reads it itself.
}

var signResponseFields = map[string]*framework.FieldSchema{
	"algorithm": {Type: framework.TypeString, Description: `Always "SHA256".`},
	"timestamp": {Type: framework.TypeInt64, Description: "The unix seconds that were signed."},
	"hash":      {Type: framework.TypeString, Description: "The base64 RSA-SHA256 signature."},
	"plaintext": {Type: framework.TypeString, Description: "Only with include_plaintext=true: the exact plaintext signed."},
}

func pathSign(b *backend) *framework.Path {
	return &framework.Path{
		Pattern: "sign",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "wetix",
			OperationVerb:   "sign",
			OperationSuffix: "mutation-input",
		},
		Fields:              signFields,
		TakesArbitraryInput: true,
		Operations: map[logical.Operation]framework.OperationHandler{
			// Not forwarded: a sign reads the key and writes nothing, so a
			// performance standby answers it locally, like transit's sign.
			logical.UpdateOperation: &framework.PathOperation{
				Callback:    strict(b.pathSignWrite, "input"),
				Summary:     "Sign a mutation's input argument; answers with the signature argument to embed.",
				Description: "Fields: mutation, input (the mutation's input argument: a JSON object, or the same as a JSON string), timestamp (optional), include_plaintext (optional).",
				Responses:   map[int][]framework.Response{200: {{Description: "OK", Fields: signResponseFields}}},
			},
		},
		HelpSynopsis:    "Sign a createMovieOrder or confirmMovieOrder input with the mount's signing key.",
		HelpDescription: strings.TrimSpace(signHelp),
	}
}

const signHelp = `
Returns the signature argument of a WeTix createMovieOrder or
confirmMovieOrder mutation, ready to embed: {"algorithm","timestamp","hash"}.

Fields:
  mutation           "createMovieOrder" or "confirmMovieOrder"
  input              the mutation's input argument, exactly as the app will
                     send it: a JSON object, or that object as a JSON string.
                     Both sign the same bytes: numbers as WeTix's Go server
                     reads them (float64: 1.50 is signed as 1.5). An integer
                     beyond 2^53 gets a warning naming its path; send such
                     input as a string (input=@order.json). At most 64 KiB.
  timestamp          unix seconds to sign; default now
  include_plaintext  also return the signed plaintext (default false; it
                     holds customer data)

By default (config canonical_json="go") the engine re-encodes the input as
Go's encoding/json does, as WeTix's Go server most probably does: keys
sorted recursively, minified, <, > and & escaped as \u003c, \u003e, \u0026,
numbers printed from float64. With canonical_json="literal" (the v0.1 rule)
characters and each number's text are kept, and an object input holding a
number is refused (send it as a string). The engine base64-encodes the
result, builds clientId=<config client_id>&data=...&mutation=...
&shaType=SHA256&timestamp=... and signs it with RSA PKCS#1 v1.5 over
SHA-256. make sandbox-check tells which rule WeTix verifies. The input and
the plaintext are never logged.
`

func (b *backend) pathSignWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	mutation := d.Get("mutation").(string)
	if err := signature.CheckMutation(mutation); err != nil {
		return logical.ErrorResponse(err.Error()), logical.ErrInvalidRequest
	}
	cfg, err := b.configFor(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	rule := signature.RuleGo
	if cfg != nil {
		rule = cfg.canonicalRule()
	}
	canonical, warnings, err := canonicalInput(rule, req.Data["input"])
	if err != nil {
		return logical.ErrorResponse(err.Error()), logical.ErrInvalidRequest
	}
	// Whole seconds of Vault's clock, so orders signed together share a
	// timestamp. WeTix documents it only as "the UNIX timestamp"; a replay
	// guard keyed on it alone would refuse all but the first of them. Not
	// worked around (spacing timestamps apart would need a cluster-wide
	// counter and push them into the future under load); docs/signing.md
	// says how an integrator checks it in the sandbox.
	now := b.now()
	ts := now.Unix()
	if v, ok := d.GetOk("timestamp"); ok {
		ts = v.(int64)
		switch {
		case ts <= 0:
			return logical.ErrorResponse("timestamp must be unix seconds, a positive integer; omit it to use Vault's clock"), logical.ErrInvalidRequest
		case ts > maxUnixSeconds:
			return logical.ErrorResponse("timestamp looks like milliseconds; give unix seconds (or omit it to use Vault's clock)"), logical.ErrInvalidRequest
		}
		if skew := time.Unix(ts, 0).Sub(now); skew > signSkewWarning || -skew > signSkewWarning {
			warnings = append(warnings, fmt.Sprintf("timestamp is %s away from Vault's clock; WeTix may refuse the signature as stale", skew.Round(time.Second).Abs()))
		}
	}

	if cfg == nil {
		return logical.ErrorResponse("the client ID is not configured: the plaintext WeTix verifies starts with it. " + errNotConfigured.Error()), logical.ErrInvalidRequest
	}
	key, err := b.signing.signer(ctx, req.Storage)
	if errors.Is(err, errNoSigningKey) {
		return logical.ErrorResponse(err.Error()), logical.ErrInvalidRequest
	} else if err != nil {
		return nil, err
	}
	sig, plaintext, err := signature.SignInput(key.key, cfg.ClientID, mutation, canonical, ts)
	if err != nil {
		return nil, err
	}

	data := map[string]interface{}{"algorithm": sig.Algorithm, "timestamp": sig.Timestamp, "hash": sig.Hash}
	if d.Get("include_plaintext").(bool) {
		data["plaintext"] = string(plaintext)
	}
	resp := &logical.Response{Data: data}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}

// canonicalInput accepts the input argument as a JSON string or as the
// object Vault decoded from the request body; both give the bytes WeTix's
// server rebuilds (see package signature). Errors never quote it.
func canonicalInput(rule signature.Rule, raw interface{}) ([]byte, []string, error) {
	switch v := raw.(type) {
	case nil:
		return nil, nil, errors.New(`input is required: the mutation's input argument as a JSON object, e.g. input=@order.json`)
	case string:
		if len(v) > maxSignInputBytes {
			return nil, nil, fmt.Errorf("input is %d bytes; at most %d are accepted", len(v), maxSignInputBytes)
		}
		return rule.Canonicalize([]byte(v))
	case map[string]interface{}:
		canonical, warnings, err := rule.CanonicalizeValue(v)
		if errors.Is(err, signature.ErrInexactNumber) {
			err = fmt.Errorf("%w: Vault passes a JSON object's numbers to plugins as floating point, and this mount's canonical_json rule (literal) signs each number's text. Send input as a JSON string instead (the same JSON, quoted; on the CLI input=@order.json)", err)
		}
		if err == nil && len(canonical) > maxSignInputBytes {
			err = fmt.Errorf("input is %d bytes minified; at most %d are accepted", len(canonical), maxSignInputBytes)
		}
		return canonical, warnings, err
	}
	return nil, nil, errors.New("input must be a JSON object (or a string holding one), not " + jsonKind(raw))
}

func jsonKind(v interface{}) string {
	switch v.(type) {
	case []interface{}:
		return "an array"
	case bool:
		return "a boolean"
	}
	return "a number"
}
