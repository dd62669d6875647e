package acceptance

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// TestStaleServeCountsSurviveAPluginReload: reads served the previous
// secret's token (a new secret WeTix rejects) are counted in memory first;
// `vault plugin reload` right after them must not lose them. Vault calls
// the plugin's cleanup over gRPC before it stops the process, and that is
// the cleanup's last chance to store them: status after the reload counts
// every warned read. (Unless a rollback tick ran in between, which stores
// them too, this fails when the cleanup does not store them.)
func TestStaleServeCountsSurviveAPluginReload(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	s, _ := setup(t, wetixtest.Options{}, nil)
	vaulttest.MustReadToken(t, s.Client, "wetix")
	if _, err := s.Client.Logical().Write("wetix/config", map[string]interface{}{"client_secret": "mistyped-secret"}); err != nil {
		t.Fatalf("writing the new secret: %v", err)
	}
	failed := vaulttest.WaitFor(10*time.Second, func() bool {
		st, err := s.Client.Logical().Read("wetix/status")
		return err == nil && st != nil && st.Data["last_error"] != nil && st.Data["last_error"] != ""
	})
	if !failed {
		t.Fatal("the write's background refresh did not fail with the mistyped secret")
	}
	warned := 0
	for i := 0; i < 3; i++ {
		sec, err := s.Client.Logical().Read("wetix/token")
		if err != nil {
			t.Fatalf("read %d during the secret change: %v", i, err)
		}
		if len(sec.Warnings) > 0 && strings.Contains(sec.Warnings[0], "is pending") {
			warned++
		}
	}
	if warned != 3 {
		t.Fatalf("%d of 3 reads carried the pending-secret warning", warned)
	}
	s.MustCLI("plugin", "reload", "-plugin="+vaulttest.CatalogName)
	st, err := s.Client.Logical().Read("wetix/status")
	if err != nil {
		t.Fatalf("status after the reload: %v", err)
	}
	byReason, _ := st.Data["stale_serves_by_reason"].(map[string]interface{})
	if got := fmt.Sprint(st.Data["stale_serves"]); got != "3" || fmt.Sprint(byReason["secret_pending"]) != "3" {
		t.Errorf("after 3 stale reads and a plugin reload, status stale_serves=%s by reason %v; want 3, all secret_pending", got, byReason)
	}
}
