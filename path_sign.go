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
				Description: "Fields: mutation, input (the mutation's input argument: a JSON object, or the same as a JSON string to keep numbers' exact text), timestamp (optional), include_plaintext (optional).",
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
                     Prefer the string (input=@order.json on the CLI): Vault's
                     plugin protocol carries a JSON object's numbers as
                     floating point, which loses their text (12.0 and 1e0
                     arrive as 12 and 1), so an object holding any number is
                     refused; a string keeps every number's text (1.50 stays
                     1.50). At most 64 KiB.
  timestamp          unix seconds to sign; default now
  include_plaintext  also return the signed plaintext (default false; it
                     holds customer data)

The engine sorts the input's keys recursively, minifies it, base64-encodes
it, builds clientId=<config client_id>&data=...&mutation=...&shaType=SHA256
&timestamp=... and signs it with RSA PKCS#1 v1.5 over SHA-256. The input and
the plaintext are never logged.
`

func (b *backend) pathSignWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	mutation := d.Get("mutation").(string)
	if err := signature.CheckMutation(mutation); err != nil {
		return logical.ErrorResponse(err.Error()), logical.ErrInvalidRequest
	}
	canonical, err := canonicalInput(req.Data["input"])
	if err != nil {
		return logical.ErrorResponse(err.Error()), logical.ErrInvalidRequest
	}
	now := b.now()
	ts := now.Unix()
	var warnings []string
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

	cfg, err := b.configFor(ctx, req.Storage)
	if err != nil {
		return nil, err
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

// canonicalInput accepts the input argument as a JSON string (exact) or as
// the object Vault decoded from the request body, which must hold no number
// (see signature.CanonicalizeValue). Errors never quote it.
func canonicalInput(raw interface{}) ([]byte, error) {
	var canonical []byte
	var err error
	switch v := raw.(type) {
	case nil:
		return nil, errors.New(`input is required: the mutation's input argument as a JSON object, e.g. input=@order.json`)
	case string:
		if len(v) > maxSignInputBytes {
			return nil, fmt.Errorf("input is %d bytes; at most %d are accepted", len(v), maxSignInputBytes)
		}
		canonical, err = signature.Canonicalize([]byte(v))
	case map[string]interface{}:
		canonical, err = signature.CanonicalizeValue(v)
		if errors.Is(err, signature.ErrInexactNumber) {
			err = fmt.Errorf("%w: Vault passes a JSON object's numbers to plugins as floating point. Send input as a JSON string instead (the same JSON, quoted; on the CLI input=@order.json) so its numbers keep their exact text", err)
		}
		if err == nil && len(canonical) > maxSignInputBytes {
			err = fmt.Errorf("input is %d bytes minified; at most %d are accepted", len(canonical), maxSignInputBytes)
		}
	default:
		return nil, errors.New("input must be a JSON object (or a string holding one), not " + jsonKind(v))
	}
	return canonical, err
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
