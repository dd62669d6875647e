package wetix

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// tokensStoragePath holds the live credential pair and its history. It is
// seal-wrapped (see backend.go) because it holds the refresh token.
const tokensStoragePath = "tokens"

// tokenState is everything the plugin knows about the mount's WeTix
// credential. It is stored as one entry so that a rotated refresh token and the
// access token it came with are never half-written.
type tokenState struct {
	SchemaVersion int `json:"schema_version"`
	// Generation ties the tokens to the config they were obtained with; see
	// wetixConfig.Generation.
	Generation string `json:"generation"`
	// SecretSerial is the config's SecretSerial when this pair was
	// obtained; a lower one means a secret change is pending.
	SecretSerial int `json:"secret_serial,omitempty"`

	AccessToken      string    `json:"access_token,omitempty"`
	AccessIssuedAt   time.Time `json:"access_issued_at,omitzero"`
	AccessExpiresAt  time.Time `json:"access_expires_at,omitzero"`
	RefreshToken     string    `json:"refresh_token,omitempty"`
	RefreshIssuedAt  time.Time `json:"refresh_issued_at,omitzero"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at,omitzero"`
	// RefreshSent is set, and stored, before the refresh token is sent to
	// WeTix. WeTix does not document whether refresh tokens are single-use,
	// so once sent, the token is treated as spent unless a new pair was
	// stored; a crash mid-refresh then leads to the client-credentials grant,
	// never to replaying a dead token.
	RefreshSent bool `json:"refresh_sent,omitempty"`

	Stats refreshStats `json:"stats"`
}

// refreshStats feeds the status path. It lives in storage beside the tokens
// so every node of an HA cluster reports the same history.
type refreshStats struct {
	LastRefreshAt    time.Time `json:"last_refresh_at,omitzero"`
	LastGrant        string    `json:"last_grant,omitempty"`
	Refreshes        uint64    `json:"refreshes"`
	RefreshGrants    uint64    `json:"refresh_grants"`
	CredentialGrants uint64    `json:"client_credentials_grants"`
	Failures         uint64    `json:"failures"`
	// FailuresByKind splits Failures by errorKind. Entries written before
	// it existed count their failures in Failures only.
	FailuresByKind map[string]uint64 `json:"failures_by_kind,omitempty"`
	// StaleServes counts reads answered with a due token (stale_serves.go);
	// StaleServesByReason splits it, for the serves counted since v0.2.0.
	StaleServes         uint64            `json:"stale_serves,omitempty"`
	StaleServesByReason map[string]uint64 `json:"stale_serves_by_reason,omitempty"`
	LastError           string            `json:"last_error,omitempty"`
	LastErrorKind       string            `json:"last_error_kind,omitempty"`
	LastErrorAt         time.Time         `json:"last_error_at,omitzero"`
}

func (s *tokenState) hasAccessToken() bool { return s != nil && s.AccessToken != "" }

// secretPending says whether these tokens were obtained with a client secret
// the config has since replaced.
func (s *tokenState) secretPending(cfg *wetixConfig) bool {
	return s.SecretSerial != cfg.SecretSerial
}

// accessLifetime is the full life WeTix gave the access token.
func (s *tokenState) accessLifetime() time.Duration {
	return s.AccessExpiresAt.Sub(s.AccessIssuedAt)
}

func (s *tokenState) accessRemaining(now time.Time) time.Duration {
	return s.AccessExpiresAt.Sub(now)
}

// usableRefreshToken says whether the refresh grant is worth a try.
func (s *tokenState) usableRefreshToken(now time.Time) bool {
	if s == nil || s.RefreshToken == "" || s.RefreshSent {
		return false
	}
	return s.RefreshExpiresAt.IsZero() || now.Before(s.RefreshExpiresAt)
}

// forGeneration returns s if it belongs to cfg's generation, else the
// starting state of that generation: no access token, the seed refresh token
// if one was given, and the counts kept. The last error is dropped: it was
// about the old credentials, and status would keep blaming them.
func (s *tokenState) forGeneration(cfg *wetixConfig) *tokenState {
	if s.Generation == cfg.Generation {
		return s
	}
	stats := s.Stats
	stats.LastError, stats.LastErrorKind, stats.LastErrorAt = "", "", time.Time{}
	return &tokenState{Generation: cfg.Generation, SecretSerial: cfg.SecretSerial, RefreshToken: cfg.SeedRefreshToken, Stats: stats}
}

// withCountsAtLeast returns s (a copy) with each group of counters taken
// from o where o's total is higher: refreshes with their grant split,
// failures with their kinds, stale serves with their reasons. A group moves
// whole, so its parts still sum to its total. Everything else is s's.
func (s *tokenState) withCountsAtLeast(o *tokenState) *tokenState {
	c := s.clone()
	mine, theirs := &c.Stats, &o.Stats
	if theirs.Refreshes > mine.Refreshes {
		mine.Refreshes, mine.RefreshGrants, mine.CredentialGrants = theirs.Refreshes, theirs.RefreshGrants, theirs.CredentialGrants
	}
	if theirs.Failures > mine.Failures {
		mine.Failures, mine.FailuresByKind = theirs.Failures, maps.Clone(theirs.FailuresByKind)
	}
	if theirs.StaleServes > mine.StaleServes {
		mine.StaleServes, mine.StaleServesByReason = theirs.StaleServes, maps.Clone(theirs.StaleServesByReason)
	}
	return c
}

func (s *tokenState) clone() *tokenState {
	if s == nil {
		return &tokenState{}
	}
	c := *s
	return &c
}

func readTokenState(ctx context.Context, storage logical.Storage) (*tokenState, error) {
	entry, err := storage.Get(ctx, tokensStoragePath)
	if err != nil {
		return nil, fmt.Errorf("reading stored tokens: %w", err)
	}
	if entry == nil {
		return &tokenState{}, nil
	}
	if err := checkEntrySchema("tokens entry", entry, tokensSchema); err != nil {
		return nil, err
	}
	var st tokenState
	if err := entry.DecodeJSON(&st); err != nil {
		return nil, fmt.Errorf("decoding stored tokens: %w", err)
	}
	st.SchemaVersion = tokensSchema
	return &st, nil
}

func writeTokenState(ctx context.Context, storage logical.Storage, st *tokenState) error {
	stamped := *st // st may already be shared with readers
	stamped.SchemaVersion = tokensSchema
	entry, err := logical.StorageEntryJSON(tokensStoragePath, &stamped)
	if err != nil {
		return fmt.Errorf("encoding tokens: %w", err)
	}
	return storage.Put(ctx, entry)
}
