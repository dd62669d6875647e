package acceptance

import (
	"strings"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// TestWrongNewSecretNeverFailsARead is the operator's secret change through
// a real Vault: a mistyped client_secret is written, reads keep getting the
// valid token (with a warning) and status says what to fix; verify=true
// refuses the next typo outright; the right secret then completes the change.
func TestWrongNewSecretNeverFailsARead(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	s, emu := setup(t, wetixtest.Options{}, map[string]interface{}{"ttl": 60})
	tok, _ := vaulttest.MustReadToken(t, s.Client, "wetix")

	if _, err := s.Client.Logical().Write("wetix/config", map[string]interface{}{"client_secret": "mistyped-secret"}); err != nil {
		t.Fatalf("writing the new secret: %v", err)
	}
	// The write's background refresh meets invalid_client; no read fails.
	for i := 0; i < 20; i++ {
		sec, err := s.Client.Logical().Read("wetix/token")
		if err != nil {
			t.Fatalf("read %d after a wrong secret failed: %v", i, err)
		}
		if sec.Data["access_token"] != tok || len(sec.Warnings) == 0 || !strings.Contains(sec.Warnings[0], "client_secret written at") {
			t.Fatalf("read %d: token changed or no warning (%v)", i, sec.Warnings)
		}
		time.Sleep(100 * time.Millisecond)
	}
	status, err := s.Client.Logical().Read("wetix/status")
	if err != nil || status.Data["healthy"] != false || status.Data["secret_change_pending"] != true ||
		!strings.Contains(status.Data["advice"].(string), "client_secret=") {
		t.Fatalf("status during a rejected secret change: %v %v", status, err)
	}
	// The CLI carries the same warning.
	if out, err := s.CLI("read", "-format=json", "wetix/token"); err != nil || !strings.Contains(out, "is pending") {
		t.Fatalf("vault read during the change: %v\n%s", err, out)
	}
	// verify=true refuses a typo and changes nothing.
	if out, err := s.CLI("write", "wetix/config", "client_secret=another-typo", "verify=true"); err == nil || !strings.Contains(out+err.Error(), "refused the new credentials") {
		t.Fatalf("verify=true with a wrong secret: %v\n%s", err, out)
	}
	// The right secret: the change completes, the old tokens retire.
	good := emu.MountConfig(nil)["client_secret"]
	if _, err := s.Client.Logical().Write("wetix/config", map[string]interface{}{"client_secret": good, "verify": true}); err != nil {
		t.Fatalf("writing the right secret: %v", err)
	}
	sec, err := s.Client.Logical().Read("wetix/token")
	if err != nil || sec.Data["access_token"] == tok || len(sec.Warnings) != 0 || !emu.IsAccessTokenValid(sec.Data["access_token"].(string)) {
		t.Fatalf("after the right secret: %v, warnings %v", err, sec.Warnings)
	}
	if status, _ := s.Client.Logical().Read("wetix/status"); status.Data["secret_change_pending"] != false || status.Data["healthy"] != true {
		t.Fatalf("status after the change: %v", status.Data)
	}
	if n := emu.Calls(wetixtest.GrantRefresh); n != 0 {
		t.Fatalf("%d refresh-grant calls during the secret change: the old refresh token must not be sent with an unproven secret", n)
	}
}
