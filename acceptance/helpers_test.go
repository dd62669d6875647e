package acceptance

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// version is what the plugin under test is built and registered as.
const version = "v0.1.0"

// startVault runs a Vault server with the plugin built into a fresh plugin
// directory and registered in the catalog, as an operator would do it.
func startVault(t *testing.T, opts vaulttest.Options) (*vaulttest.Server, vaulttest.Plugin) {
	t.Helper()
	if opts.PluginDir == "" {
		opts.PluginDir = t.TempDir()
	}
	p := vaulttest.BuildPlugin(t, opts.PluginDir, version)
	s := vaulttest.Start(t, opts)
	s.RegisterPlugin(p)
	return s, p
}

// newEmulator starts a WeTix emulator that closes when the test ends. It is
// created after Vault, so it closes first (cleanups run in reverse) while
// the plugin can still be talking to it: Close cuts those requests short.
func newEmulator(t *testing.T, opts wetixtest.Options) *wetixtest.Server {
	t.Helper()
	emu := wetixtest.New(opts)
	t.Cleanup(emu.Close)
	return emu
}

// configure points mount at emu with the emulator's default credentials;
// extra adds fields or overrides them (another client_id, a ttl).
func configure(t *testing.T, c *api.Client, mount string, emu *wetixtest.Server, extra map[string]interface{}) {
	t.Helper()
	data := map[string]interface{}{
		"client_id":     "test-client-id",
		"client_secret": "test-client-secret",
		"base_url":      emu.URL(),
	}
	for k, v := range extra {
		data[k] = v
	}
	if _, err := c.Logical().Write(mount+"/config", data); err != nil {
		t.Fatalf("writing %s/config: %v", mount, err)
	}
}

// setup is the common case: a dev server, the plugin mounted at wetix/ and
// configured against a fresh emulator.
func setup(t *testing.T, emuOpts wetixtest.Options, cfg map[string]interface{}) (*vaulttest.Server, *wetixtest.Server) {
	t.Helper()
	s, _ := startVault(t, vaulttest.Options{})
	s.Mount("wetix", version)
	emu := newEmulator(t, emuOpts)
	configure(t, s.Client, "wetix", emu, cfg)
	return s, emu
}

// readToken reads mount/token with the official client and returns the
// access token and the secret around it.
func readToken(t *testing.T, c *api.Client, mount string) (string, *api.Secret) {
	t.Helper()
	sec, err := c.Logical().Read(mount + "/token")
	if err != nil {
		t.Fatalf("reading %s/token: %v", mount, err)
	}
	if sec == nil || sec.Data == nil {
		t.Fatalf("reading %s/token: empty response", mount)
	}
	tok, _ := sec.Data["access_token"].(string)
	if tok == "" {
		t.Fatalf("reading %s/token: no access_token in %v", mount, sec.Data)
	}
	return tok, sec
}

// rawGet is the curl-equivalent request the README shows: GET with the
// X-Vault-Token header, nothing from the Vault client library.
func rawGet(t *testing.T, addr, path, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, addr+"/v1/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, body
}

// mustJSON decodes CLI or HTTP output, failing with the text on error.
func mustJSON(t *testing.T, raw []byte, v interface{}) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decoding %q: %v", raw, err)
	}
}

// runningVersion is the version Vault reports the mount's plugin runs, from
// the detailed mount list an operator sees.
func runningVersion(t *testing.T, s *vaulttest.Server, mount string) string {
	t.Helper()
	var mounts map[string]struct {
		Type           string `json:"type"`
		PluginVersion  string `json:"plugin_version"`
		RunningVersion string `json:"running_plugin_version"`
	}
	mustJSON(t, []byte(s.MustCLI("secrets", "list", "-detailed", "-format=json")), &mounts)
	m, ok := mounts[mount+"/"]
	if !ok {
		t.Fatalf("mount %s/ not in `vault secrets list -detailed`", mount)
	}
	return m.RunningVersion
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}
