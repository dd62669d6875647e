package wetix

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// fuzzFields are the config fields FuzzConfigWrite feeds, in the order of
// its string arguments; bit i of present says whether field i is sent.
var fuzzFields = []string{"client_id", "client_secret", "environment", "base_url", "ttl", "request_timeout"}

// fuzzBaseline is the config in place before the fuzzed write when the
// write is an update.
var fuzzBaseline = map[string]interface{}{
	"client_id":       "baseline-client",
	"client_secret":   "baseline-secret",
	"environment":     "sandbox",
	"base_url":        "https://oauth.example.test",
	"ttl":             "2h",
	"request_timeout": "45s",
}

// FuzzConfigWrite writes arbitrary strings to the config fields through
// HandleRequest, as Vault would pass them from `vault write`. The write must
// never panic; it is either refused with an error naming a field, leaving
// the previous config exactly as it was, or stored, in which case the config
// reads back as written, holds only values the engine can use, writes back
// unchanged, and retires the stored tokens only when the credentials or the
// OAuth URL changed.
func FuzzConfigWrite(f *testing.F) {
	f.Add("client-1", "secret", "production", "", "", "", uint8(0b000011), true)
	f.Add(" client-1 ", " secret ", " SANDBOX ", "http://127.0.0.1:8089/", "1h", "30s", uint8(0b111111), true)
	f.Add("", "", "", "", "0", "0", uint8(0b110000), false)
	f.Fuzz(func(t *testing.T, clientID, clientSecret, environment, baseURL, ttl, requestTimeout string, present uint8, create bool) {
		values := []string{clientID, clientSecret, environment, baseURL, ttl, requestTimeout}
		for i, v := range values {
			// Vault only ever passes valid UTF-8: the request arrived as
			// JSON and reaches the plugin as a protobuf string.
			values[i] = strings.ToValidUTF8(v, "\uFFFD")
		}
		baseURL = values[3]
		data := map[string]interface{}{}
		for i, field := range fuzzFields {
			if present&(1<<i) != 0 {
				data[field] = values[i]
			}
		}

		ctx := context.Background()
		b := newBackend(hclog.NewNullLogger(), time.Now)
		if err := b.Setup(ctx, logical.TestBackendConfig()); err != nil {
			t.Fatal(err)
		}
		storage := &logical.InmemStorage{}
		op := logical.CreateOperation
		var prev *wetixConfig
		if !create {
			op = logical.UpdateOperation
			if resp, err := fuzzConfigRequest(b, storage, logical.CreateOperation, fuzzBaseline); err != nil || resp.IsError() {
				t.Fatalf("baseline config: %v %v", resp, err)
			}
			prev = fuzzStoredConfig(t, storage)
			// Stored tokens of the baseline generation, to see whether
			// the write retires them.
			if err := writeTokenState(ctx, storage, &tokenState{Generation: prev.Generation, AccessToken: "baseline-access"}); err != nil {
				t.Fatal(err)
			}
		}
		before := fuzzRawConfig(t, storage)
		readBefore, _ := fuzzConfigRequest(b, storage, logical.ReadOperation, nil)

		resp, err := fuzzConfigRequest(b, storage, op, data)

		if err != nil || resp.IsError() {
			if err != nil && !errors.Is(err, logical.ErrInvalidRequest) {
				t.Fatalf("write failed with %v, not as an invalid request", err)
			}
			if !resp.IsError() {
				t.Fatalf("refused with %v but no error response", err)
			}
			msg := resp.Error().Error()
			if !fuzzNamesField(msg) {
				t.Fatalf("refusal names no field: %q", msg)
			}
			if after := fuzzRawConfig(t, storage); !bytes.Equal(after, before) {
				t.Fatalf("refused write changed the stored config:\nbefore %s\nafter  %s", before, after)
			}
			readAfter, _ := fuzzConfigRequest(b, storage, logical.ReadOperation, nil)
			if !fuzzSameRead(readBefore, readAfter) {
				t.Fatalf("refused write changed what config reads: %v -> %v", fuzzData(readBefore), fuzzData(readAfter))
			}
			return
		}

		cfg := fuzzStoredConfig(t, storage)
		read, err := fuzzConfigRequest(b, storage, logical.ReadOperation, nil)
		if err != nil || read == nil || read.IsError() {
			t.Fatalf("config read after a write: %v %v", read, err)
		}
		got := read.Data
		// What was sent is what reads back; what was not sent kept its
		// previous (or default) value.
		want := map[string]interface{}{
			"client_id": "baseline-client", "environment": "sandbox", "base_url": "https://oauth.example.test",
			"ttl": int64(7200), "request_timeout": int64(45),
		}
		wantSecret := "baseline-secret"
		if create {
			want = map[string]interface{}{"environment": envProduction, "base_url": "", "ttl": int64(defaultTTL.Seconds()), "request_timeout": int64(30)}
		}
		for i, field := range fuzzFields {
			if present&(1<<i) == 0 {
				continue
			}
			v := values[i]
			switch field {
			case "client_id":
				want[field] = strings.TrimSpace(v)
			case "client_secret":
				wantSecret = strings.TrimSpace(v)
			case "environment":
				want[field] = strings.ToLower(strings.TrimSpace(v))
			case "base_url":
				want[field] = nil // checked below: normalised, not verbatim
			case "ttl":
				want[field] = fuzzSeconds(t, v, defaultTTL)
			case "request_timeout":
				want[field] = fuzzSeconds(t, v, defaultRequestTimeout)
			}
		}
		for k, v := range want {
			if v != nil && got[k] != v {
				t.Fatalf("config read %s = %#v, want %#v (sent %q)", k, got[k], v, data[k])
			}
		}
		if cfg.ClientSecret != wantSecret || got["client_secret_set"] != true {
			t.Fatalf("stored client secret %q, want %q; client_secret_set=%v", cfg.ClientSecret, wantSecret, got["client_secret_set"])
		}
		if _, ok := got["client_secret"]; ok {
			t.Fatalf("config read returns client_secret")
		}
		// Only values the engine can use are stored.
		switch {
		case cfg.ClientID == "" || strings.Contains(cfg.ClientID, ":") || cfg.ClientID != strings.TrimSpace(cfg.ClientID):
			t.Fatalf("stored client_id %q", cfg.ClientID)
		case cfg.ClientSecret == "" || cfg.ClientSecret != strings.TrimSpace(cfg.ClientSecret):
			t.Fatalf("stored client_secret of length %d is empty or padded", len(cfg.ClientSecret))
		case cfg.Environment != envProduction && cfg.Environment != envSandbox:
			t.Fatalf("stored environment %q", cfg.Environment)
		case cfg.TTL <= 0:
			t.Fatalf("stored ttl %s", cfg.TTL)
		case cfg.RequestTimeout <= 0 || cfg.RequestTimeout > maxRequestTimeout:
			t.Fatalf("stored request_timeout %s", cfg.RequestTimeout)
		case got["oauth_url"] != cfg.oauthURL():
			t.Fatalf("oauth_url %v, stored config means %s", got["oauth_url"], cfg.oauthURL())
		}
		if cfg.BaseURL != "" {
			again, err := validateBaseURL(cfg.BaseURL)
			if err != nil || again != cfg.BaseURL {
				t.Fatalf("stored base_url %q does not validate to itself: %q %v", cfg.BaseURL, again, err)
			}
		} else if present&(1<<3) != 0 && strings.TrimSpace(baseURL) != "" {
			t.Fatalf("base_url %q accepted but not stored", baseURL)
		}
		if prev != nil {
			changed := cfg.ClientID != prev.ClientID || cfg.ClientSecret != prev.ClientSecret || cfg.oauthURL() != prev.oauthURL()
			if retired := cfg.Generation != prev.Generation; retired != changed {
				t.Fatalf("credentials or OAuth URL changed=%v but tokens retired=%v", changed, retired)
			}
			st, err := readTokenState(ctx, storage)
			if err != nil {
				t.Fatal(err)
			}
			if kept := st.forGeneration(cfg).AccessToken == "baseline-access"; kept == changed {
				t.Fatalf("credentials or OAuth URL changed=%v but the stored access token kept=%v", changed, kept)
			}
		}

		// Writing back what was read changes nothing, not even the
		// generation: re-applying a config must not discard tokens.
		back := map[string]interface{}{}
		for _, k := range []string{"client_id", "environment", "base_url", "ttl", "request_timeout"} {
			back[k] = got[k]
		}
		if resp, err := fuzzConfigRequest(b, storage, logical.UpdateOperation, back); err != nil || resp.IsError() {
			t.Fatalf("writing back the config read %v: %v %v", back, resp, err)
		}
		cfg2 := fuzzStoredConfig(t, storage)
		cfg2.UpdatedAt = cfg.UpdatedAt
		if *cfg2 != *cfg {
			t.Fatalf("writing back the config read changed it:\n%+v\n%+v", cfg, cfg2)
		}
	})
}

func fuzzConfigRequest(b *backend, storage logical.Storage, op logical.Operation, data map[string]interface{}) (*logical.Response, error) {
	return b.HandleRequest(context.Background(), &logical.Request{Operation: op, Path: "config", Data: data, Storage: storage})
}

func fuzzRawConfig(t *testing.T, storage logical.Storage) []byte {
	e, err := storage.Get(context.Background(), configStoragePath)
	if err != nil {
		t.Fatal(err)
	}
	if e == nil {
		return nil
	}
	return e.Value
}

func fuzzStoredConfig(t *testing.T, storage logical.Storage) *wetixConfig {
	cfg, err := readConfig(context.Background(), storage)
	if err != nil || cfg == nil {
		t.Fatalf("stored config: %v %v", cfg, err)
	}
	return cfg
}

func fuzzData(r *logical.Response) map[string]interface{} {
	if r == nil {
		return nil
	}
	return r.Data
}

func fuzzSameRead(a, b *logical.Response) bool {
	da, db := fuzzData(a), fuzzData(b)
	if len(da) != len(db) {
		return false
	}
	for k, v := range da {
		if db[k] != v {
			return false
		}
	}
	return true
}

func fuzzNamesField(msg string) bool {
	for _, f := range fuzzFields {
		if strings.Contains(msg, f) {
			return true
		}
	}
	return false
}

// fuzzSeconds is what an operator means by a duration field: Vault's
// duration syntax, whole seconds, 0 for the default.
func fuzzSeconds(t *testing.T, v string, def time.Duration) int64 {
	fd := &framework.FieldData{Raw: map[string]interface{}{"d": v}, Schema: map[string]*framework.FieldSchema{"d": {Type: framework.TypeDurationSecond}}}
	n, ok, err := fd.GetOkErr("d")
	if err != nil || !ok {
		t.Fatalf("duration %q was accepted by the write but does not parse: %v", v, err)
	}
	if n.(int) == 0 {
		return int64(def.Seconds())
	}
	return int64(n.(int))
}
