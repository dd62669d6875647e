package wetix

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

func TestConfigCreateReadUpdateDelete(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "30m", "request_timeout": "10s"})

	resp, err := h.request(logical.ReadOperation, "config", nil)
	if err != nil || resp == nil {
		t.Fatalf("read: %v %v", resp, err)
	}
	want := map[string]interface{}{
		"client_id":            "client-1",
		"client_secret_set":    true,
		"environment":          "production",
		"base_url":             h.wetix.URL(),
		"oauth_url":            h.wetix.URL(),
		"refresh_token_seeded": false,
		"ttl":                  int64(1800),
		"request_timeout":      int64(10),
	}
	for k, v := range want {
		if resp.Data[k] != v {
			t.Errorf("config read %s = %#v, want %#v", k, resp.Data[k], v)
		}
	}

	// An update changes only the fields given.
	if resp, err := h.request(logical.UpdateOperation, "config", map[string]interface{}{"ttl": "2h"}); err != nil || resp.IsError() {
		t.Fatalf("update: %v %v", resp, err)
	}
	resp, _ = h.request(logical.ReadOperation, "config", nil)
	if resp.Data["ttl"] != int64(7200) || resp.Data["client_id"] != "client-1" || resp.Data["request_timeout"] != int64(10) {
		t.Fatalf("after update: %v", resp.Data)
	}

	// Dropping base_url goes back to the environment's URL.
	if _, err := h.request(logical.UpdateOperation, "config", map[string]interface{}{"base_url": "", "environment": "sandbox"}); err != nil {
		t.Fatal(err)
	}
	resp, _ = h.request(logical.ReadOperation, "config", nil)
	if resp.Data["oauth_url"] != "https://sb-oauth.wetix.my" {
		t.Fatalf("sandbox oauth_url = %v", resp.Data["oauth_url"])
	}

	if _, err := h.request(logical.DeleteOperation, "config", nil); err != nil {
		t.Fatal(err)
	}
	resp, err = h.request(logical.ReadOperation, "config", nil)
	if err != nil || resp != nil {
		t.Fatalf("read after delete: %v %v", resp, err)
	}
	if e, _ := h.storage.Get(t.Context(), tokensStoragePath); e != nil {
		t.Fatal("tokens survived config delete")
	}
}

func TestConfigReadNeverShowsSecrets(t *testing.T) {
	h := newHarness(t)
	seed := h.wetix.SeedRefreshToken()
	h.configure(map[string]interface{}{"refresh_token": seed})
	h.readToken()

	resp, err := h.request(logical.ReadOperation, "config", nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(resp.Data)
	for _, secret := range []string{"s3cret-client-secret-value", seed, h.wetix.LastIssued().RefreshToken, h.wetix.LastIssued().AccessToken} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("config read leaks a secret: %s", raw)
		}
	}
	if resp.Data["refresh_token_seeded"] != true {
		t.Fatalf("refresh_token_seeded = %v", resp.Data["refresh_token_seeded"])
	}
}

func TestConfigValidation(t *testing.T) {
	valid := func(h *harness) map[string]interface{} {
		return map[string]interface{}{"client_id": "client-1", "client_secret": "secret", "base_url": h.wetix.URL()}
	}
	cases := []struct {
		name    string
		mutate  func(map[string]interface{})
		wantMsg string
	}{
		{"missing client_id", func(d map[string]interface{}) { delete(d, "client_id") }, "client_id is required"},
		{"empty client_id", func(d map[string]interface{}) { d["client_id"] = "  " }, "client_id must not be empty"},
		{"colon in client_id", func(d map[string]interface{}) { d["client_id"] = "a:b" }, "client_id must not contain ':'"},
		{"missing client_secret", func(d map[string]interface{}) { delete(d, "client_secret") }, "client_secret is required"},
		{"empty client_secret", func(d map[string]interface{}) { d["client_secret"] = "" }, "client_secret must not be empty"},
		{"unknown environment", func(d map[string]interface{}) { d["environment"] = "staging" }, `environment "staging" is not known`},
		{"relative base_url", func(d map[string]interface{}) { d["base_url"] = "oauth.wetix.my" }, "base_url"},
		{"http to a remote host", func(d map[string]interface{}) { d["base_url"] = "http://oauth.wetix.my" }, "plain http to a non-loopback host"},
		{"ftp scheme", func(d map[string]interface{}) { d["base_url"] = "ftp://127.0.0.1" }, `scheme "ftp" is not supported`},
		{"credentials in base_url", func(d map[string]interface{}) { d["base_url"] = "https://u:p@oauth.wetix.my" }, "must not contain credentials"},
		{"negative ttl", func(d map[string]interface{}) { d["ttl"] = -5 }, `field "ttl": cannot provide negative value`},
		{"negative request_timeout", func(d map[string]interface{}) { d["request_timeout"] = -1 }, `field "request_timeout": cannot provide negative value`},
		{"huge request_timeout", func(d map[string]interface{}) { d["request_timeout"] = "1h" }, "request_timeout 1h0m0s is longer"},
		{"empty refresh_token", func(d map[string]interface{}) { d["refresh_token"] = " " }, "refresh_token must not be empty"},
		{"ttl not a duration", func(d map[string]interface{}) { d["ttl"] = "soon" }, "ttl"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			data := valid(h)
			tc.mutate(data)
			resp, err := h.request(logical.CreateOperation, "config", data)
			msg := ""
			if resp != nil && resp.IsError() {
				msg = resp.Error().Error()
			} else if err != nil {
				msg = err.Error()
			}
			if !strings.Contains(msg, tc.wantMsg) {
				t.Fatalf("error %q does not contain %q", msg, tc.wantMsg)
			}
			if e, _ := h.storage.Get(t.Context(), configStoragePath); e != nil {
				t.Fatal("an invalid config was stored")
			}
		})
	}
}

func TestConfigInvalidUpdateChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.readToken()
	before := h.stored()

	resp, err := h.request(logical.UpdateOperation, "config", map[string]interface{}{
		"client_id": "client-2", "environment": "nowhere",
	})
	if err == nil && !resp.IsError() {
		t.Fatal("invalid update accepted")
	}
	read, _ := h.request(logical.ReadOperation, "config", nil)
	if read.Data["client_id"] != "client-1" {
		t.Fatalf("client_id changed by a refused update: %v", read.Data["client_id"])
	}
	if after := h.stored(); after.AccessToken != before.AccessToken || after.RefreshToken != before.RefreshToken {
		t.Fatal("tokens changed by a refused update")
	}
}

func TestConfigLoopbackHTTPAllowed(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8089", "http://localhost:8089/", "http://[::1]:8089", "https://oauth.example.com/prefix/"} {
		if _, err := validateBaseURL(u); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	got, _ := validateBaseURL("https://oauth.example.com/prefix/")
	if got != "https://oauth.example.com/prefix" {
		t.Errorf("trailing slash kept: %s", got)
	}
}

func TestConfigCredentialChangeDiscardsTokens(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	first := h.readToken().Data["access_token"]
	h.wantCalls(1, 0)

	// A ttl change keeps the tokens: the next read is served from cache.
	h.request(logical.UpdateOperation, "config", map[string]interface{}{"ttl": "10m"})
	if got := h.readToken().Data["access_token"]; got != first {
		t.Fatal("ttl change discarded the tokens")
	}
	h.wantCalls(1, 0)

	// A client_id change discards them: the write starts a refresh with the
	// new ID (which this emulator rejects), and so does the next read, with
	// the client-credentials grant, never the old client's refresh token.
	h.request(logical.UpdateOperation, "config", map[string]interface{}{"client_id": "client-2"})
	h.b.tokens.background.Wait()
	h.wantCalls(2, 0)
	resp, err := h.request(logical.ReadOperation, "token", nil)
	if !strings.Contains(errText(resp, err), "WeTix rejected the client credentials") {
		t.Fatalf("read with an unknown client_id: %q", errText(resp, err))
	}
	h.wantCalls(3, 0)
	if st := h.stored(); st.AccessToken != "" || st.RefreshToken != "" {
		t.Fatal("the old client's tokens are still stored")
	}
	// Back to the right ID: the write's background refresh gets the new
	// pair, and the read is served from it.
	h.request(logical.UpdateOperation, "config", map[string]interface{}{"client_id": "client-1"})
	h.b.tokens.background.Wait()
	second := h.readToken().Data["access_token"]
	if second == first {
		t.Fatal("the discarded token came back")
	}
	h.wantCalls(4, 0)

	// A new client_secret replaces the tokens too, once it has brought a
	// pair of its own (see the secret-change tests).
	h.wetix.SetClientSecret("rotated-secret")
	h.request(logical.UpdateOperation, "config", map[string]interface{}{"client_secret": "rotated-secret"})
	h.b.tokens.background.Wait()
	if got := h.readToken().Data["access_token"]; got == second {
		t.Fatal("the previous secret's token is still served after the new secret worked")
	}
	h.wantCalls(5, 0)
}

func TestConfigRewritingTheSameSeedDoesNotReplayIt(t *testing.T) {
	h := newHarness(t)
	seed := h.wetix.SeedRefreshToken()
	h.configure(map[string]interface{}{"refresh_token": seed})
	first := h.readToken().Data["access_token"]
	h.wantCalls(0, 1)

	// A provisioning script runs again with the same (now spent) seed.
	h.request(logical.UpdateOperation, "config", map[string]interface{}{"refresh_token": seed, "ttl": "30m"})
	if h.readToken().Data["access_token"] != first {
		t.Fatal("rewriting the same seed discarded the live tokens")
	}
	h.wantCalls(0, 1)

	// A different seed is a new starting point.
	seed2 := h.wetix.SeedRefreshToken()
	h.request(logical.UpdateOperation, "config", map[string]interface{}{"refresh_token": seed2})
	h.readToken()
	h.wantCalls(0, 2)
	if h.wetix.IsRefreshTokenLive(seed2) {
		t.Fatal("the new seed was not used")
	}
}

func TestCredentialFixClearsStaleStatusError(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"client_secret": "wrong"})
	h.request(logical.ReadOperation, "token", nil)
	if st := h.status(); st["healthy"] != false || st["last_error"] == "" {
		t.Fatalf("status after a rejected secret: %v", st)
	}
	h.request(logical.UpdateOperation, "config", map[string]interface{}{"client_secret": "s3cret-client-secret-value"})
	if st := h.status(); st["healthy"] != true || st["last_error"] != "" {
		t.Fatalf("status still blames the old credentials: %v", st)
	}
}

func TestConfigWriteRefusesUnknownFieldsAndChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	before := h.rawEntry(configStoragePath)
	// The operator's typo: Vault would otherwise answer "Success!".
	resp, err := h.request(logical.UpdateOperation, "config", map[string]interface{}{"clinet_secret": "NEW"})
	msg := errText(resp, err)
	for _, want := range []string{"clinet_secret", "client_secret", "nothing was changed"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "NEW") {
		t.Fatalf("the refused value is echoed: %q", msg)
	}
	if after := h.rawEntry(configStoragePath); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatal("a refused write changed the stored config")
	}
	resp, err = h.request(logical.UpdateOperation, "rotate", map[string]interface{}{"force": true})
	if !strings.Contains(errText(resp, err), "takes no fields") {
		t.Fatalf("rotate with an unknown field: %q", errText(resp, err))
	}
}

func TestConfigWriteAnswersWithTheResultingConfig(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	resp, err := h.request(logical.UpdateOperation, "config", map[string]interface{}{"ttl": "5m"})
	if err != nil || resp == nil || resp.IsError() {
		t.Fatalf("config update: %v", errText(resp, err))
	}
	if resp.Data["ttl"] != int64(300) || resp.Data["client_id"] != "client-1" || resp.Data["client_secret_set"] != true {
		t.Fatalf("write answered %v", resp.Data)
	}
	for k, v := range resp.Data {
		if s, ok := v.(string); ok && strings.Contains(s, "s3cret") {
			t.Fatalf("write answer field %s carries the client secret", k)
		}
	}
}

func TestNonStringSecretsAreRefusedWithoutQuotingThem(t *testing.T) {
	h := newHarness(t)
	canary := "canary-secret-value-9f3k"
	for _, data := range []map[string]interface{}{
		{"client_id": "c", "client_secret": []interface{}{canary}},
		{"client_id": "c", "client_secret": "x", "refresh_token": map[string]interface{}{"t": canary}},
	} {
		resp, err := h.request(logical.UpdateOperation, "config", data)
		msg := errText(resp, err)
		if !strings.Contains(msg, "must be a string") || strings.Contains(msg, canary) {
			t.Fatalf("config write with a non-string secret: %q", msg)
		}
		if _, _, err := h.b.HandleExistenceCheck(context.Background(), &logical.Request{Operation: logical.UpdateOperation, Path: "config", Data: data, Storage: h.storage}); err == nil || strings.Contains(err.Error(), canary) {
			t.Fatalf("existence check: %v", err)
		}
	}
	if strings.Contains(h.logs.String(), canary) {
		t.Fatal("the secret reached the log")
	}
}
