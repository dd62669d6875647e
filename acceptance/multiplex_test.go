package acceptance

import (
	"testing"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// TestMultiplexedMounts mounts the plugin twice, each against its own WeTix
// client: each mount serves its own client's token and never the other's,
// and one plugin process serves both (the binary uses ServeMultiplex).
func TestMultiplexedMounts(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	s, p := vaulttest.StartWithPlugin(t, vaulttest.Options{})
	emus := map[string]*wetixtest.Server{}
	for _, m := range []string{"wetix-a", "wetix-b"} {
		s.Mount(m, vaulttest.PluginVersion)
		id, secret := m+"-client", m+"-secret"
		emus[m] = newEmulator(t, wetixtest.Options{ClientID: id, ClientSecret: secret})
		vaulttest.Configure(t, s.Client, m, emus[m], map[string]interface{}{"client_id": id, "client_secret": secret})
	}

	toks := map[string]string{}
	for i := 0; i < 3; i++ { // repeated: the cache must be per mount too
		for _, m := range []string{"wetix-a", "wetix-b"} {
			tok, _ := vaulttest.MustReadToken(t, s.Client, m)
			if tok != emus[m].LastIssued().AccessToken {
				t.Errorf("%s served a token its emulator did not issue last", m)
			}
			toks[m] = tok
		}
	}
	if toks["wetix-a"] == toks["wetix-b"] {
		t.Fatalf("both mounts serve the same token")
	}
	// Each emulator signs with its own key and client: a token leaking from
	// one mount to the other would be rejected by the other's WeTix.
	if emus["wetix-b"].IsAccessTokenValid(toks["wetix-a"]) || emus["wetix-a"].IsAccessTokenValid(toks["wetix-b"]) {
		t.Errorf("a mount's token is valid at the other mount's WeTix")
	}
	for m, emu := range emus {
		if n := emu.Calls(wetixtest.GrantClientCredentials); n != 1 {
			t.Errorf("%s's WeTix got %d client-credentials calls, want 1", m, n)
		}
	}

	pids := s.PluginPIDs()
	t.Logf("plugin processes: %v", pids)
	if len(pids) != 1 {
		t.Fatalf("%d plugin processes serve the two mounts, want 1 (multiplexing)", len(pids))
	}

	// A mount on another version needs its own binary, hence a second
	// process: this shows PluginPIDs counts processes rather than always
	// finding one.
	s.RegisterPlugin(vaulttest.BuildPlugin(t, p.Dir, "v0.3.0"))
	s.Mount("wetix-c", "v0.3.0")
	vaulttest.Configure(t, s.Client, "wetix-c", emus["wetix-a"], map[string]interface{}{"client_id": "wetix-a-client", "client_secret": "wetix-a-secret"})
	vaulttest.MustReadToken(t, s.Client, "wetix-c")
	if pids := s.PluginPIDs(); len(pids) != 2 {
		t.Errorf("with a v0.3.0 mount beside the v0.2.0 ones, plugin processes %v; want 2", pids)
	}
}
