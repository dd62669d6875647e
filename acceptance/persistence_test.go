package acceptance

import (
	"strings"
	"testing"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// TestPersistenceAcrossRestart uses raft storage: after Vault restarts
// (stop, start, unseal) the mount serves the same token without calling
// WeTix, and the stored refresh token still works: a forced rotate uses the
// refresh grant, which WeTix accepts, rather than falling back to the client
// credentials.
func TestPersistenceAcrossRestart(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	s, _ := vaulttest.StartWithPlugin(t, vaulttest.Options{Storage: "raft"})
	s.Mount("wetix", vaulttest.PluginVersion)
	emu := newEmulator(t, wetixtest.Options{})
	vaulttest.Configure(t, s.Client, "wetix", emu, nil)

	before, _ := vaulttest.MustReadToken(t, s.Client, "wetix")
	issued := emu.LastIssued()
	if before != issued.AccessToken {
		t.Fatalf("token read is not the one issued")
	}
	emu.ResetCounts()

	s.Restart()

	after, _ := vaulttest.MustReadToken(t, s.Client, "wetix")
	if after != before {
		t.Errorf("after a restart the mount serves a different token")
	}
	if n := emu.TotalCalls(); n != 0 {
		t.Errorf("after a restart the read made %d calls to WeTix, want 0", n)
	}
	if !emu.IsRefreshTokenLive(issued.RefreshToken) {
		t.Fatalf("the refresh token issued before the restart is no longer live at WeTix")
	}

	out := s.MustCLI("write", "-format=json", "-f", "wetix/rotate")
	var rot struct {
		Data struct {
			LastGrant string `json:"last_grant"`
			Healthy   bool   `json:"healthy"`
		} `json:"data"`
	}
	mustJSON(t, []byte(out), &rot)
	if rot.Data.LastGrant != "refresh_token" || !rot.Data.Healthy {
		t.Errorf("rotate answered last_grant %q healthy %v; want refresh_token, healthy", rot.Data.LastGrant, rot.Data.Healthy)
	}
	if c, ok := emu.Calls(wetixtest.GrantRefresh), emu.Successes(wetixtest.GrantRefresh); c != 1 || ok != 1 {
		t.Errorf("rotate made %d refresh calls (%d accepted); want 1 accepted: the stored refresh token survived", c, ok)
	}
	if n := emu.Calls(wetixtest.GrantClientCredentials); n != 0 {
		t.Errorf("rotate fell back to the client-credentials grant (%d calls)", n)
	}
	if strings.Contains(s.Log(), "invalid_grant") {
		t.Errorf("Vault's log shows invalid_grant")
	}
	rotated, _ := vaulttest.MustReadToken(t, s.Client, "wetix")
	if rotated == before || rotated != emu.LastIssued().AccessToken {
		t.Errorf("after rotate the mount does not serve the new token")
	}
}
