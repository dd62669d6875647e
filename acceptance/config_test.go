package acceptance

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// TestConfigNeverShowsSecrets writes the config through the API with a
// client secret and a seed refresh token, gets tokens issued, and then reads
// config and status as raw JSON: the client id is there, but not the client
// secret, the seed, nor any access or refresh token. Vault's log (which holds
// the plugin's log) must not show them either.
func TestConfigNeverShowsSecrets(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	const secret = "s3cret-that-must-never-leak"
	s, _ := vaulttest.StartWithPlugin(t, vaulttest.Options{})
	s.Mount("wetix", vaulttest.PluginVersion)
	emu := newEmulator(t, wetixtest.Options{ClientID: "acme-client", ClientSecret: secret})
	seed := emu.SeedRefreshToken()
	vaulttest.Configure(t, s.Client, "wetix", emu, map[string]interface{}{
		"client_id":     "acme-client",
		"client_secret": secret,
		"refresh_token": seed,
		"ttl":           "10m",
	})

	tok, _ := vaulttest.MustReadToken(t, s.Client, "wetix")
	issued := emu.LastIssued()
	if tok != issued.AccessToken {
		t.Fatalf("token read is not the one the emulator issued")
	}
	// The seed was used: the refresh grant ran, so a new refresh token is
	// now stored too.
	if emu.Successes(wetixtest.GrantRefresh) != 1 || issued.RefreshToken == "" {
		t.Fatalf("the seed refresh token was not used: refresh successes %d", emu.Successes(wetixtest.GrantRefresh))
	}
	secrets := map[string]string{
		"client secret":       secret,
		"seed refresh token":  seed,
		"access token":        issued.AccessToken,
		"rotated refresh tok": issued.RefreshToken,
	}

	code, body := rawGet(t, s.Addr, "wetix/config", s.Token)
	if code != http.StatusOK {
		t.Fatalf("GET wetix/config: %d %s", code, body)
	}
	var cfg struct {
		Data map[string]interface{} `json:"data"`
	}
	mustJSON(t, body, &cfg)
	// Prove the read is a real config, so "no secret in it" means something.
	if cfg.Data["client_id"] != "acme-client" || cfg.Data["client_secret_set"] != true ||
		cfg.Data["refresh_token_seeded"] != true || cfg.Data["base_url"] != emu.URL() {
		t.Errorf("config read = %v; want client_id, client_secret_set, refresh_token_seeded and base_url", cfg.Data)
	}
	if cfg.Data["ttl"] != float64(600) {
		t.Errorf("ttl = %v, want 600", cfg.Data["ttl"])
	}
	for what, v := range secrets {
		if strings.Contains(string(body), v) {
			t.Errorf("GET wetix/config shows the %s:\n%s", what, body)
		}
	}

	code, body = rawGet(t, s.Addr, "wetix/status", s.Token)
	if code != http.StatusOK || !strings.Contains(string(body), `"healthy":true`) {
		t.Fatalf("GET wetix/status: %d %s", code, body)
	}
	for what, v := range secrets {
		if strings.Contains(string(body), v) {
			t.Errorf("GET wetix/status shows the %s:\n%s", what, body)
		}
	}
	for what, v := range secrets {
		if strings.Contains(s.Log(), v) {
			t.Errorf("Vault's log shows the %s", what)
		}
	}
}
