package wetix

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/client"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature"
)

const configStoragePath = "config"

const (
	envProduction = "production"
	envSandbox    = "sandbox"

	defaultTTL            = 5 * time.Minute
	defaultRequestTimeout = 30 * time.Second
	// maxRequestTimeout keeps one call, and a retry after it, inside Vault's
	// default 90s request deadline.
	maxRequestTimeout = 60 * time.Second
	// refreshWindow: a token is refreshed when less than this share of its
	// life remains (6 of 60 days for WeTix's access tokens).
	refreshWindow = 0.1
)

// wetixConfig is the stored config entry. It is seal-wrapped: it holds the
// client secret and possibly a seed refresh token.
type wetixConfig struct {
	SchemaVersion    int           `json:"schema_version"`
	ClientID         string        `json:"client_id"`
	ClientSecret     string        `json:"client_secret"`
	Environment      string        `json:"environment"`
	BaseURL          string        `json:"base_url,omitempty"`
	SeedRefreshToken string        `json:"seed_refresh_token,omitempty"`
	TTL              time.Duration `json:"ttl"`
	RequestTimeout   time.Duration `json:"request_timeout"`
	// CanonicalJSON is the signing rule; "" (every config written before it
	// existed) is the default rule, so an upgrade changes no stored entry.
	CanonicalJSON signature.Rule `json:"canonical_json,omitempty"`
	// Generation changes whenever the stored tokens stop being valid for this
	// config: new client credentials, a new OAuth URL, or a new seed refresh
	// token. Tokens carry the generation they were obtained under, so a
	// single write of the config entry is enough to retire them, with
	// nothing half-written if a second write were to fail.
	Generation string `json:"generation"`
	// SecretSerial counts changes of the client secret alone (same client
	// ID and OAuth URL). Such a change keeps the generation: the tokens
	// obtained with the previous secret stay, and are served, until a pair
	// obtained with the new one replaces them (tokenState.SecretSerial), so a
	// secret written a moment before WeTix activates it, or mistyped, costs
	// no outage.
	SecretSerial    int       `json:"secret_serial,omitempty"`
	SecretChangedAt time.Time `json:"secret_changed_at,omitzero"`
	UpdatedAt       time.Time `json:"updated_at"`
}

// canonicalRule is the signing rule this mount uses.
func (c *wetixConfig) canonicalRule() signature.Rule {
	if c.CanonicalJSON == "" {
		return signature.RuleGo
	}
	return c.CanonicalJSON
}

// oauthURL is the WeTix OAuth base URL the config points at.
func (c *wetixConfig) oauthURL() string {
	if c.BaseURL != "" {
		return c.BaseURL
	}
	if c.Environment == envSandbox {
		return client.SandboxURL
	}
	return client.ProductionURL
}

func readConfig(ctx context.Context, storage logical.Storage) (*wetixConfig, error) {
	entry, err := storage.Get(ctx, configStoragePath)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if entry == nil {
		return nil, nil
	}
	if err := checkEntrySchema("config entry", entry, configSchema); err != nil {
		return nil, err
	}
	var cfg wetixConfig
	if err := entry.DecodeJSON(&cfg); err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	cfg.SchemaVersion = configSchema
	return &cfg, nil
}

func writeConfig(ctx context.Context, storage logical.Storage, cfg *wetixConfig) error {
	stamped := *cfg // cfg may already be shared with readers
	stamped.SchemaVersion = configSchema
	entry, err := logical.StorageEntryJSON(configStoragePath, &stamped)
	if err != nil {
		return fmt.Errorf("encoding config: %w", err)
	}
	return storage.Put(ctx, entry)
}

// configStore owns the config entry: its only reader and writer, with the
// in-memory copy that token reads use. Writes and deletes go through the
// token lifecycle (see credential.go), which calls put and remove under its
// lock.
type configStore struct {
	cache entryCache[wetixConfig]
}

// get returns the config, nil when none is stored.
func (s *configStore) get(ctx context.Context, storage logical.Storage) (*wetixConfig, error) {
	if cfg := s.cache.get(); cfg != nil {
		return cfg, nil
	}
	since := s.cache.begin()
	cfg, err := readConfig(ctx, storage)
	if err != nil || cfg == nil {
		return nil, err
	}
	s.cache.fill(since, cfg)
	return cfg, nil
}

func (s *configStore) put(ctx context.Context, storage logical.Storage, cfg *wetixConfig) error {
	err := writeConfig(ctx, storage, cfg)
	if err != nil {
		// Whether the write landed is unknown: read storage next time.
		s.cache.set(nil)
		return err
	}
	s.cache.set(cfg)
	return nil
}

func (s *configStore) remove(ctx context.Context, storage logical.Storage) error {
	err := storage.Delete(ctx, configStoragePath)
	s.cache.set(nil)
	return err
}

// invalidate forgets the copy: storage changed underneath.
func (s *configStore) invalidate() { s.cache.set(nil) }

func newGeneration() string {
	var buf [12]byte
	_, _ = rand.Read(buf[:]) // never fails since Go 1.24
	return hex.EncodeToString(buf[:])
}

// validateBaseURL allows https anywhere and plain http only to loopback: the
// client secret travels in every request's Authorization header.
func validateBaseURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		// The input is not echoed: a mistyped URL may carry credentials.
		return "", fmt.Errorf("base_url is not an absolute URL; give one like https://oauth.wetix.my")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("base_url must not contain credentials, a query or a fragment; give the OAuth server's base URL only, like https://oauth.wetix.my")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return "", fmt.Errorf("base_url %q uses plain http to a non-loopback host, which would send the client secret unencrypted; use https:// (http:// is allowed only to 127.0.0.1, ::1 or localhost, e.g. a local emulator)", u.Redacted())
		}
	default:
		return "", fmt.Errorf("base_url scheme %q is not supported; use https://", u.Scheme)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
