package wetix

import (
	"context"
	"errors"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// pathSigningKeys: the key that signs, the key waiting for WeTix, and the
// handover between them.
func pathSigningKeys(b *backend) []*framework.Path {
	return []*framework.Path{
		pathSigningKeySlot(b, slotCurrent, "signing-key", "Manage the RSA key that signs order mutations.", signingKeyHelp),
		pathSigningKeySlot(b, slotNext, "next-signing-key", "Manage the RSA key waiting to take over signing.", nextSigningKeyHelp),
		pathSigningHandover(b, "promote", "Make the next key the signing key; keep the old one for rollback.", promoteHelp, b.pathSigningKeyPromote),
		pathSigningHandover(b, "rollback", "Undo the last promote: the previous key signs again.", rollbackHelp, b.pathSigningKeyRollback),
	}
}

func pathSigningKeySlot(b *backend, slot keySlot, suffix, synopsis, help string) *framework.Path {
	write := func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		return b.pathSigningKeyWrite(ctx, req, d, slot)
	}
	return &framework.Path{
		Pattern: string(slot),
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "wetix",
			OperationSuffix: suffix,
		},
		Fields: map[string]*framework.FieldSchema{
			"private_key": {
				Type:         framework.TypeString,
				Description:  "An RSA private key to import, as PEM (PKCS#8 \"PRIVATE KEY\" or PKCS#1 \"RSA PRIVATE KEY\", unencrypted, at least 2048 bits). Omit it to have Vault generate the key. Write-only: never returned.",
				DisplayAttrs: &framework.DisplayAttributes{Name: "Private key (PEM)", Sensitive: true},
			},
			"key_bits": {
				Type:          framework.TypeInt,
				Description:   "Size of a generated key: 2048 (default), 3072 or 4096. Not allowed with private_key.",
				Default:       defaultSigningKeyBits,
				AllowedValues: []interface{}{2048, 3072, 4096},
			},
		},
		ExistenceCheck: func(ctx context.Context, req *logical.Request, _ *framework.FieldData) (bool, error) {
			k, err := b.signing.keys(ctx, req.Storage)
			if err != nil {
				return false, err
			}
			return slotKey(k, slot) != nil, nil
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.CreateOperation: &framework.PathOperation{
				Callback:                    strict(write),
				Summary:                     "Generate a key in Vault, or import one.",
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				Responses:                   map[int][]framework.Response{200: {{Description: "OK", Fields: signingKeyReadFields}}},
			},
			// Vault sends an update when the slot holds a key; the handler
			// refuses it with the way forward.
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    strict(write),
				Summary:                     "Generate a key in Vault, or import one (refused while a key is there).",
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				Responses:                   map[int][]framework.Response{200: {{Description: "OK", Fields: signingKeyReadFields}}},
			},
			logical.ReadOperation: &framework.PathOperation{
				Callback: func(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
					return b.pathSigningKeyRead(ctx, req, slot)
				},
				Summary:   "Read the public key, its size, fingerprint and origin; never the private key.",
				Responses: map[int][]framework.Response{200: {{Description: "OK", Fields: signingKeyReadFields}}},
			},
			logical.DeleteOperation: &framework.PathOperation{
				Callback: func(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
					_, err := b.signing.remove(ctx, req.Storage, slot)
					return nil, err
				},
				Summary:                     "Delete the key.",
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
		},
		HelpSynopsis:    synopsis,
		HelpDescription: strings.TrimSpace(help),
	}
}

func pathSigningHandover(b *backend, verb, synopsis, help string, cb framework.OperationFunc) *framework.Path {
	return &framework.Path{
		Pattern: "signing-key/" + verb,
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "wetix",
			OperationVerb:   verb,
			OperationSuffix: "signing-key",
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    strict(cb),
				Summary:                     synopsis,
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
				Responses:                   map[int][]framework.Response{200: {{Description: "OK", Fields: signingKeyReadFields}}},
			},
		},
		HelpSynopsis:    synopsis,
		HelpDescription: strings.TrimSpace(help),
	}
}

var signingKeyReadFields = map[string]*framework.FieldSchema{
	"public_key":           {Type: framework.TypeString, Description: "The public key, PEM \"PUBLIC KEY\" (SubjectPublicKeyInfo): what the operator sends to WeTix."},
	"key_bits":             {Type: framework.TypeInt, Description: "RSA modulus size in bits."},
	"fingerprint":          {Type: framework.TypeString, Description: "Lower-case hex SHA-256 of the DER SubjectPublicKeyInfo; equals `openssl pkey -pubin -in public.pem -outform DER | sha256sum`."},
	"source":               {Type: framework.TypeString, Description: `"generated" (in Vault) or "imported".`},
	"created_at":           {Type: framework.TypeTime, Description: "When the key was generated or imported (RFC 3339)."},
	"promoted_at":          {Type: framework.TypeTime, Description: "signing-key only: when the key started signing."},
	"next_fingerprint":     {Type: framework.TypeString, Description: "signing-key only: fingerprint of the key waiting in signing-key/next, empty when none."},
	"previous_fingerprint": {Type: framework.TypeString, Description: "signing-key only: fingerprint of the key the last promote replaced, which rollback would restore; empty when none."},
	"previous_retired_at":  {Type: framework.TypeTime, Description: "signing-key only: when the previous key stopped signing."},
}

const signingKeyHelp = `
The RSA key pair that signs the createMovieOrder and confirmMovieOrder
mutations (see "sign"). The private key never leaves Vault: it is not
returned, logged or exported, and is stored seal-wrapped.

  vault write -f <mount>/signing-key                 generate (key_bits=2048|3072|4096)
  vault write <mount>/signing-key private_key=@key.pem  import (PEM, PKCS#1 or PKCS#8)
  vault read <mount>/signing-key                     public_key, key_bits, fingerprint, ...
  vault delete <mount>/signing-key                   delete it (and the previous key)

Send public_key to WeTix. A write never replaces an existing key, because
WeTix holds its public key: to change keys, use signing-key/next and
signing-key/promote. The read also shows the handover: next_fingerprint (a key
is waiting) and previous_fingerprint (rollback is possible).
`

const nextSigningKeyHelp = `
The key waiting to take over signing. A key change is a handover, because
WeTix holds one public key per client and changes it by hand:

  1. vault write -f <mount>/signing-key/next    (or private_key=@key.pem)
  2. vault read -field=public_key <mount>/signing-key/next   and send it to WeTix
  3. once WeTix has switched: vault write -f <mount>/signing-key/promote

Until step 3 the current key keeps signing. Same fields as signing-key; a
write never replaces a waiting key (delete it first).
`

const promoteHelp = `
Makes the key in signing-key/next the signing key, from the next sign on.
The key it replaces is kept as the previous key, so that
"vault write -f <mount>/signing-key/rollback" can undo the promotion if WeTix
turns out not to have switched yet. Answers with the new signing key's
public information.
`

const rollbackHelp = `
Undoes the last promote: the previous key signs again, and the key that was
promoted goes back to signing-key/next, to be promoted again once WeTix has
switched to it. Refused when no promote happened since the key was written or
deleted, or while another key waits in signing-key/next.
`

func slotKey(k *signingKeys, slot keySlot) *signingKey {
	if slot == slotCurrent {
		return k.current
	}
	return k.next
}

func (b *backend) pathSigningKeyWrite(ctx context.Context, req *logical.Request, d *framework.FieldData, slot keySlot) (*logical.Response, error) {
	pemText, importing := d.GetOk("private_key")
	bits, bitsGiven := d.GetOk("key_bits")
	var entry signingKeyEntry
	var err error
	switch {
	case importing && bitsGiven:
		return logical.ErrorResponse("key_bits applies only when Vault generates the key; omit it when importing private_key"), logical.ErrInvalidRequest
	case importing:
		entry, err = parseImportedKey(pemText.(string), b.now())
	default:
		n := defaultSigningKeyBits
		if bitsGiven {
			n = bits.(int)
		}
		// A refused write must not cost a key generation, and a key must
		// not be generated only to be thrown away.
		if existing, err := b.signing.keys(ctx, req.Storage); err == nil && slotKey(existing, slot) != nil {
			return logical.ErrorResponse(slotTakenError{slot}.Error()), logical.ErrInvalidRequest
		}
		entry, err = generateSigningKey(n, b.now())
	}
	if err != nil {
		return logical.ErrorResponse(err.Error()), logical.ErrInvalidRequest
	}
	if err := b.signing.put(ctx, req.Storage, slot, entry); err != nil {
		var taken slotTakenError
		if errors.As(err, &taken) {
			return logical.ErrorResponse(err.Error()), logical.ErrInvalidRequest
		}
		return nil, err
	}
	return b.pathSigningKeyRead(ctx, req, slot)
}

func (b *backend) pathSigningKeyRead(ctx context.Context, req *logical.Request, slot keySlot) (*logical.Response, error) {
	k, err := b.signing.keys(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	key := slotKey(k, slot)
	if key == nil {
		return nil, nil
	}
	data := key.info()
	if slot == slotCurrent {
		data["promoted_at"] = formatTime(key.entry.PromotedAt)
		data["next_fingerprint"], data["previous_fingerprint"], data["previous_retired_at"] = "", "", ""
		if k.next != nil {
			data["next_fingerprint"] = k.next.fingerprint
		}
		if k.previous != nil {
			data["previous_fingerprint"] = k.previous.fingerprint
			data["previous_retired_at"] = formatTime(k.previous.entry.RetiredAt)
		}
	}
	return &logical.Response{Data: data}, nil
}

func (b *backend) pathSigningKeyPromote(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if err := b.signing.promote(ctx, req.Storage); err != nil {
		if errors.Is(err, errNoNextKey) {
			return logical.ErrorResponse(err.Error()), logical.ErrInvalidRequest
		}
		return nil, err
	}
	return b.pathSigningKeyRead(ctx, req, slotCurrent)
}

func (b *backend) pathSigningKeyRollback(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if err := b.signing.rollback(ctx, req.Storage); err != nil {
		if errors.Is(err, errNoPreviousKey) || errors.Is(err, errNextWaiting) {
			return logical.ErrorResponse(err.Error()), logical.ErrInvalidRequest
		}
		return nil, err
	}
	return b.pathSigningKeyRead(ctx, req, slotCurrent)
}
