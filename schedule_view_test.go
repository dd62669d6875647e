package wetix

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// storedView is what storage holds, decoded by the test itself from the
// entries' JSON rather than through the plugin's types, so a bug in those
// cannot hide from it.
type storedView struct {
	cfg  *rawConfig
	tok  *rawTokens
	keys []string
}

type rawConfig struct {
	ClientSecret string `json:"client_secret"`
	BaseURL      string `json:"base_url"`
	Seed         string `json:"seed_refresh_token"`
	TTL          int64  `json:"ttl"` // nanoseconds (time.Duration)
	Generation   string `json:"generation"`
	SecretSerial int    `json:"secret_serial"`
}

type rawTokens struct {
	Generation       string    `json:"generation"`
	SecretSerial     int       `json:"secret_serial"`
	AccessToken      string    `json:"access_token"`
	RefreshToken     string    `json:"refresh_token"`
	RefreshSent      bool      `json:"refresh_sent"`
	RefreshIssuedAt  time.Time `json:"refresh_issued_at"`
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
	Stats            struct {
		Refreshes     uint64    `json:"refreshes"`
		LastRefreshAt time.Time `json:"last_refresh_at"`
		LastErrorKind string    `json:"last_error_kind"`
		LastErrorAt   time.Time `json:"last_error_at"`
	} `json:"stats"`
}

func readView(s *logical.InmemStorage) (storedView, error) {
	ctx := context.Background()
	var v storedView
	var err error
	if v.keys, err = s.List(ctx, ""); err != nil {
		return v, err
	}
	if e, err := s.Get(ctx, configStoragePath); err != nil {
		return v, err
	} else if e != nil {
		v.cfg = &rawConfig{}
		if err := json.Unmarshal(e.Value, v.cfg); err != nil {
			return v, err
		}
	}
	if e, err := s.Get(ctx, tokensStoragePath); err != nil {
		return v, err
	} else if e != nil {
		v.tok = &rawTokens{}
		if err := json.Unmarshal(e.Value, v.tok); err != nil {
			return v, err
		}
	}
	return v, nil
}

// credential is the pair the plugin must act on: the tokens entry of the
// config's generation, or, when there is none, the config's seed.
type credential struct {
	access          string
	refresh         string
	refreshSent     bool
	refreshIssuedAt time.Time
	refreshExpires  time.Time
	fromSeed        bool
}

func (v storedView) credential() credential {
	if v.cfg == nil {
		return credential{}
	}
	if v.tok != nil && v.tok.Generation == v.cfg.Generation {
		return credential{access: v.tok.AccessToken, refresh: v.tok.RefreshToken, refreshSent: v.tok.RefreshSent,
			refreshIssuedAt: v.tok.RefreshIssuedAt, refreshExpires: v.tok.RefreshExpiresAt}
	}
	return credential{refresh: v.cfg.Seed, fromSeed: true}
}

// secretChangePending: a new client_secret was written and has not yet
// brought a pair of its own; the stored tokens came with the previous one.
func (v storedView) secretChangePending() bool {
	return v.cfg != nil && v.tok != nil && v.tok.Generation == v.cfg.Generation && v.tok.SecretSerial != v.cfg.SecretSerial
}

// refusedSinceLastRefresh: the last refresh failed with a refusal (not
// "transient" or "storage") and none has succeeded since.
func (v storedView) refusedSinceLastRefresh() bool {
	if v.tok == nil || v.tok.Stats.LastErrorAt.IsZero() || !v.tok.Stats.LastErrorAt.After(v.tok.Stats.LastRefreshAt) {
		return false
	}
	k := v.tok.Stats.LastErrorKind
	return k != "transient" && k != "storage"
}

func (v storedView) ttl() time.Duration {
	if v.cfg == nil {
		return 0
	}
	return time.Duration(v.cfg.TTL)
}

// jwtTimes reads iat and exp from a token's payload: the emulator's own
// view of when it was issued and when it dies.
func jwtTimes(tok string) (iat, exp time.Time, ok bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return iat, exp, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return iat, exp, false
	}
	var c struct{ Iat, Exp int64 }
	if json.Unmarshal(raw, &c) != nil || c.Exp == 0 {
		return iat, exp, false
	}
	return time.Unix(c.Iat, 0), time.Unix(c.Exp, 0), true
}
