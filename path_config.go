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

func pathConfig(b *backend) *framework.Path {
	return &framework.Path{
		Pattern:      "config",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "wetix"},
		Fields: map[string]*framework.FieldSchema{
			"client_id": {
				Type:         framework.TypeString,
				Description:  "WeTix client ID, as issued by WeTix. Required when the config is first written.",
				DisplayAttrs: &framework.DisplayAttributes{Name: "Client ID"},
			},
			"client_secret": {
				Type:         framework.TypeString,
				Description:  "WeTix client secret. Required when the config is first written. Write-only: never returned by a read.",
				DisplayAttrs: &framework.DisplayAttributes{Name: "Client secret", Sensitive: true},
			},
			"environment": {
				Type:          framework.TypeString,
				Description:   `WeTix environment: "production" (https://oauth.wetix.my) or "sandbox" (https://sb-oauth.wetix.my). Ignored when base_url is set.`,
				Default:       envProduction,
				AllowedValues: []interface{}{envProduction, envSandbox},
			},
			"base_url": {
				Type:        framework.TypeString,
				Description: "Overrides environment with another OAuth base URL. Must be https://, or http:// to a loopback address (a local emulator). Write an empty string to go back to environment.",
			},
			"refresh_token": {
				Type:         framework.TypeString,
				Description:  "Optional refresh token you already hold, used for the first refresh instead of the client-credentials grant. Write-only: never returned by a read. Writing the seed the config already holds again never makes the plugin send it twice.",
				DisplayAttrs: &framework.DisplayAttributes{Name: "Seed refresh token", Sensitive: true},
			},
			"ttl": {
				Type:        framework.TypeDurationSecond,
				Description: "Lease TTL of a token read, and how far a renewal extends it (default 5m; 0 restores the default). A lease never outlives the access token it carries, whatever this says.",
				Default:     int(defaultTTL.Seconds()),
			},
			"verify": {
				Type:        framework.TypeBool,
				Description: "Check the credentials with WeTix before storing them: the write is refused, and nothing changes, unless WeTix issues a token for them now. Not stored. Cannot be combined with a new refresh_token (verifying would spend it).",
			},
			"request_timeout": {
				Type:        framework.TypeDurationSecond,
				Description: "Timeout of each call to WeTix (default 30s, at most 60s; 0 restores the default).",
				Default:     int(defaultRequestTimeout.Seconds()),
			},
			"canonical_json": {
				Type:          framework.TypeString,
				Description:   `How sign turns input into the signed bytes: "go" (default: as Go's encoding/json re-encodes the parsed input, which WeTix's Go server most probably does: <, >, & escaped, numbers read as float64) or "literal" (the v0.1 rule: characters and each number's text kept). Change it only if make sandbox-check reports that WeTix accepts the other rule.`,
				Default:       string(signature.RuleGo),
				AllowedValues: []interface{}{string(signature.RuleGo), string(signature.RuleLiteral)},
			},
		},
		ExistenceCheck: b.configExists,
		Operations: map[logical.Operation]framework.OperationHandler{
			// Writes go to the node, and the cluster, that can store them.
			logical.CreateOperation: &framework.PathOperation{
				Callback:                    strict(b.pathConfigWrite),
				Summary:                     "Write the WeTix client configuration.",
				DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "configure"},
				Responses:                   map[int][]framework.Response{200: {{Description: "OK: the resulting configuration, without its secrets", Fields: configReadFields}}},
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback:                    strict(b.pathConfigWrite),
				Summary:                     "Change the WeTix client configuration; only the fields given change.",
				DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "configure"},
				Responses:                   map[int][]framework.Response{200: {{Description: "OK: the resulting configuration, without its secrets", Fields: configReadFields}}},
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.pathConfigRead,
				Summary:      "Read the configuration, without its secrets.",
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read", OperationSuffix: "configuration"},
				Responses:    map[int][]framework.Response{200: {{Description: "OK", Fields: configReadFields}}},
			},
			logical.DeleteOperation: &framework.PathOperation{
				Callback:                    b.pathConfigDelete,
				Summary:                     "Delete the configuration and every stored token.",
				DisplayAttrs:                &framework.DisplayAttributes{OperationVerb: "delete", OperationSuffix: "configuration"},
				ForwardPerformanceStandby:   true,
				ForwardPerformanceSecondary: true,
			},
		},
		HelpSynopsis:    "Configure the WeTix client credentials.",
		HelpDescription: strings.TrimSpace(configHelp),
	}
}

var configReadFields = map[string]*framework.FieldSchema{
	"client_id":            {Type: framework.TypeString, Description: "The WeTix client ID."},
	"client_secret_set":    {Type: framework.TypeBool, Description: "Whether a client secret is stored (its value is never returned)."},
	"environment":          {Type: framework.TypeString, Description: `"production" or "sandbox".`},
	"base_url":             {Type: framework.TypeString, Description: "The base URL override, empty when environment decides."},
	"oauth_url":            {Type: framework.TypeString, Description: "The OAuth base URL in use: base_url, or the environment's."},
	"refresh_token_seeded": {Type: framework.TypeBool, Description: "Whether a seed refresh token was written with the current credentials (its value is never returned)."},
	"ttl":                  {Type: framework.TypeDurationSecond, Description: "Lease TTL of a token read, in seconds."},
	"request_timeout":      {Type: framework.TypeDurationSecond, Description: "Timeout of each call to WeTix, in seconds."},
	"canonical_json":       {Type: framework.TypeString, Description: `The rule sign uses to canonicalize input: "go" or "literal".`},
	"updated_at":           {Type: framework.TypeTime, Description: "When the config was last written (RFC 3339)."},
}

const configHelp = `
Writes the WeTix client credentials the engine uses to obtain access tokens.
client_id and client_secret are required the first time; later writes change
only the fields given. Changing client_id, client_secret or the OAuth URL
(environment, base_url) discards the stored tokens, which belong to the old
client. The client secret and the seed refresh token are never returned: a read
says only whether they are set.
`

func (b *backend) configExists(ctx context.Context, req *logical.Request, _ *framework.FieldData) (bool, error) {
	cfg, err := readConfig(ctx, req.Storage)
	return cfg != nil, err
}

func (b *backend) pathConfigRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	cfg, err := b.configFor(ctx, req.Storage)
	if err != nil || cfg == nil {
		return nil, err
	}
	return &logical.Response{Data: configData(cfg)}, nil
}

// configData is what a read, and every write, answers: the config without
// its secrets.
func configData(cfg *wetixConfig) map[string]interface{} {
	return map[string]interface{}{
		"client_id":            cfg.ClientID,
		"client_secret_set":    cfg.ClientSecret != "",
		"environment":          cfg.Environment,
		"base_url":             cfg.BaseURL,
		"oauth_url":            cfg.oauthURL(),
		"refresh_token_seeded": cfg.SeedRefreshToken != "",
		"ttl":                  int64(cfg.TTL.Seconds()),
		"request_timeout":      int64(cfg.RequestTimeout.Seconds()),
		"canonical_json":       string(cfg.canonicalRule()),
		"updated_at":           cfg.UpdatedAt.UTC().Format(time.RFC3339),
	}
}

func (b *backend) pathConfigWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	cfg, warnings, err := b.tokens.changeConfig(ctx, req.Storage, configChange{
		verify: d.Get("verify").(bool),
		merge: func(prev *wetixConfig) (*wetixConfig, error) {
			cfg, err := mergeConfig(prev, d)
			if err != nil {
				return nil, &inputError{msg: err.Error()}
			}
			cfg.UpdatedAt = b.now()
			if prev != nil && cfg.SecretSerial != prev.SecretSerial {
				cfg.SecretChangedAt = cfg.UpdatedAt
			}
			return cfg, nil
		},
	})
	var ierr *inputError
	if errors.As(err, &ierr) {
		return logical.ErrorResponse(ierr.msg), logical.ErrInvalidRequest
	}
	if err != nil {
		return nil, err
	}
	resp := &logical.Response{Data: configData(cfg)}
	for _, w := range warnings {
		resp.AddWarning(w)
	}
	return resp, nil
}

// mergeConfig applies the fields given to the previous config (nil on
// create), validating each one. It returns a new value; prev is not changed.
func mergeConfig(prev *wetixConfig, d *framework.FieldData) (*wetixConfig, error) {
	creating := prev == nil
	cfg := &wetixConfig{Environment: envProduction, TTL: defaultTTL, RequestTimeout: defaultRequestTimeout}
	if !creating {
		c := *prev
		cfg = &c
	}

	if v, ok := d.GetOk("client_id"); ok {
		id := strings.TrimSpace(v.(string))
		switch {
		case id == "":
			return nil, fmt.Errorf("client_id must not be empty; give the client ID WeTix issued")
		case strings.Contains(id, ":"):
			return nil, fmt.Errorf("client_id must not contain ':' (HTTP Basic authentication cannot carry it); check that you did not paste client_id:client_secret")
		}
		cfg.ClientID = id
	} else if creating {
		return nil, fmt.Errorf("client_id is required when creating the config: vault write <mount>/config client_id=... client_secret=...")
	}

	if v, ok := d.GetOk("client_secret"); ok {
		secret := strings.TrimSpace(v.(string))
		if secret == "" {
			return nil, fmt.Errorf("client_secret must not be empty; give the client secret WeTix issued")
		}
		cfg.ClientSecret = secret
	} else if creating {
		return nil, fmt.Errorf("client_secret is required when creating the config: vault write <mount>/config client_id=... client_secret=...")
	}

	if v, ok := d.GetOk("environment"); ok {
		env := strings.ToLower(strings.TrimSpace(v.(string)))
		if env != envProduction && env != envSandbox {
			return nil, fmt.Errorf("environment %q is not known; use %q or %q (or set base_url)", v, envProduction, envSandbox)
		}
		cfg.Environment = env
	}

	if v, ok := d.GetOk("base_url"); ok {
		raw := strings.TrimSpace(v.(string))
		if raw == "" {
			cfg.BaseURL = ""
		} else {
			u, err := validateBaseURL(raw)
			if err != nil {
				return nil, err
			}
			cfg.BaseURL = u
		}
	}

	if v, ok := d.GetOk("ttl"); ok {
		ttl := time.Duration(v.(int)) * time.Second
		switch {
		case ttl < 0:
			return nil, fmt.Errorf("ttl must not be negative; give a duration such as 1h, or 0 for the default")
		case ttl == 0:
			ttl = defaultTTL
		}
		cfg.TTL = ttl
	}

	if v, ok := d.GetOk("request_timeout"); ok {
		timeout := time.Duration(v.(int)) * time.Second
		switch {
		case timeout < 0:
			return nil, fmt.Errorf("request_timeout must not be negative; give a duration such as 30s, or 0 for the default")
		case timeout == 0:
			timeout = defaultRequestTimeout
		case timeout > maxRequestTimeout:
			return nil, fmt.Errorf("request_timeout %s is longer than the %s allowed: with a retry it would outlast Vault's default 90s request deadline", timeout, maxRequestTimeout)
		}
		cfg.RequestTimeout = timeout
	}

	if v, ok := d.GetOk("canonical_json"); ok {
		rule, err := signature.ParseRule(strings.ToLower(strings.TrimSpace(v.(string))))
		if err != nil {
			return nil, err
		}
		cfg.CanonicalJSON = rule
	}

	seed, seeded := d.GetOk("refresh_token")
	if seeded {
		s := strings.TrimSpace(seed.(string))
		if s == "" {
			return nil, fmt.Errorf("refresh_token must not be empty; omit the field to let the engine use the client-credentials grant")
		}
		seed = s
	}

	// A seed the config already held may have been sent already, so it is
	// never used again, whatever else the write changes: re-running a
	// provisioning script, even with new credentials, must not make the
	// plugin send a spent seed a second time. Alone, it keeps the generation.
	newSeed := seeded && (creating || seed != prev.SeedRefreshToken)
	switch {
	case creating || newSeed || cfg.ClientID != prev.ClientID || cfg.oauthURL() != prev.oauthURL():
		// Other client, other server or another refresh token chain: the
		// stored tokens are not this config's.
		cfg.Generation = newGeneration()
		cfg.SecretSerial, cfg.SecretChangedAt = 0, time.Time{}
		cfg.SeedRefreshToken = ""
		if newSeed {
			cfg.SeedRefreshToken = seed.(string)
		}
	case cfg.ClientSecret != prev.ClientSecret:
		// Same client: its tokens stay valid until the new secret has
		// brought a replacement (see wetixConfig.SecretSerial).
		cfg.SecretSerial = prev.SecretSerial + 1
	}
	return cfg, nil
}

func (b *backend) pathConfigDelete(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	return nil, b.tokens.deleteConfig(ctx, req.Storage)
}
