package acceptance

import (
	"testing"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// TestUpgradeFromTheReleasedV010Binary upgrades a mount that the v0.1.0
// binary, built unchanged from its release commit, configured and served:
// the entries it wrote (no schema version) must serve the same token with
// no call to WeTix, and its refresh token must still work for a rotate.
func TestUpgradeFromTheReleasedV010Binary(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	dir := t.TempDir()
	s := vaulttest.Start(t, vaulttest.Options{PluginDir: dir})
	s.RegisterPlugin(vaulttest.BuildReleasedPlugin(t, dir, vaulttest.ReleasedV010, "v0.1.0"))
	s.Mount("wetix", "v0.1.0")
	emu := newEmulator(t, wetixtest.Options{})
	vaulttest.Configure(t, s.Client, "wetix", emu, map[string]interface{}{"ttl": 600})
	tok, _ := vaulttest.MustReadToken(t, s.Client, "wetix")
	if v := runningVersion(t, s, "wetix"); v != "v0.1.0" {
		t.Fatalf("the mount runs %q before the upgrade, want v0.1.0", v)
	}
	emu.ResetCounts()

	const next = vaulttest.PluginVersion // this release
	s.RegisterPlugin(vaulttest.BuildPlugin(t, dir, next))
	s.MustCLI("secrets", "tune", "-plugin-version="+next, "wetix")
	s.MustCLI("plugin", "reload", "-plugin="+vaulttest.CatalogName)
	if v := runningVersion(t, s, "wetix"); v != next {
		t.Fatalf("after the upgrade the mount runs %q, want %s", v, next)
	}
	if got, _ := vaulttest.MustReadToken(t, s.Client, "wetix"); got != tok {
		t.Fatal("after the upgrade the mount serves another token")
	}
	if n := emu.TotalCalls(); n != 0 {
		t.Fatalf("the upgraded mount called WeTix %d times to serve a stored token", n)
	}
	status, err := s.Client.Logical().Read("wetix/status")
	if err != nil || status.Data["healthy"] != true || status.Data["refresh_token_usable"] != true {
		t.Fatalf("status after the upgrade: %v %v", status, err)
	}
	// A config write stamps the v0.1.0 entry with its schema version and
	// keeps the credentials.
	if _, err := s.Client.Logical().Write("wetix/config", map[string]interface{}{"ttl": 300}); err != nil {
		t.Fatal(err)
	}
	// The refresh token v0.1.0 stored is the one the rotate spends.
	if _, err := s.Client.Logical().Write("wetix/rotate", nil); err != nil {
		t.Fatal(err)
	}
	if rf, cc := emu.Calls(wetixtest.GrantRefresh), emu.Calls(wetixtest.GrantClientCredentials); rf != 1 || cc != 0 || emu.Replays() != 0 {
		t.Fatalf("rotate after the upgrade: %d refresh and %d client-credentials calls, %d replays; want the v0.1.0 refresh token used once", rf, cc, emu.Replays())
	}
	if got, _ := vaulttest.MustReadToken(t, s.Client, "wetix"); got == tok || !emu.IsAccessTokenValid(got) {
		t.Fatal("after the rotate the mount does not serve the new token")
	}
}
