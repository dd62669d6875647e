package acceptance

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// newEmulator starts a WeTix emulator that closes when the test ends. It is
// created after Vault, so it closes first (cleanups run in reverse) while
// the plugin can still be talking to it: Close cuts those requests short.
func newEmulator(t *testing.T, opts wetixtest.Options) *wetixtest.Server {
	t.Helper()
	emu := wetixtest.New(opts)
	t.Cleanup(emu.Close)
	return emu
}

// setup is the common case: a dev server, the plugin mounted at wetix/ and
// configured against a fresh emulator.
func setup(t *testing.T, emuOpts wetixtest.Options, cfg map[string]interface{}) (*vaulttest.Server, *wetixtest.Server) {
	t.Helper()
	s, _ := vaulttest.StartWithPlugin(t, vaulttest.Options{})
	s.Mount("wetix", vaulttest.PluginVersion)
	emu := newEmulator(t, emuOpts)
	vaulttest.Configure(t, s.Client, "wetix", emu, cfg)
	return s, emu
}

// rawGet is the curl-equivalent request the README shows: GET with the
// X-Vault-Token header, nothing from the Vault client library.
func rawGet(t *testing.T, addr, path, token string) (int, []byte) {
	t.Helper()
	return rawRequest(t, http.MethodGet, addr, path, token, nil)
}

// rawPost sends body as it is: the JSON an app writes, not what the Vault
// client library would make of a Go map.
func rawPost(t *testing.T, addr, path, token string, body []byte) (int, []byte) {
	t.Helper()
	return rawRequest(t, http.MethodPost, addr, path, token, body)
}

func rawRequest(t *testing.T, method, addr, path, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, addr+"/v1/"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, raw
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
