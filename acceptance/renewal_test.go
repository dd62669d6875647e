package acceptance

import (
	"strings"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// TestLeaseRenewWithTheCLI: an app token with the README's policy (plus
// Vault's default policy) renews its own lease with `vault lease renew`; the
// renewed lease, as `vault lease lookup` shows it, ends no later than ttl
// from now and before expires_at less the margin, even with a 24h increment;
// after a rotate the renewal is refused with the plugin's message, not a Go
// struct dump. (From the review of renewable leases.)
func TestLeaseRenewWithTheCLI(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	s, _ := setup(t, wetixtest.Options{AccessTTL: 2 * time.Minute}, map[string]interface{}{"ttl": 30})
	app := appClient(t, s, "wetix-read", readOnlyPolicy)
	_, sec := vaulttest.MustReadToken(t, app, "wetix")
	expiresAt, err := time.Parse(time.RFC3339, sec.Data["expires_at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	margin := 6 * time.Second // 5% of 2m

	for _, inc := range []string{"", "10", "86400"} {
		args := []string{"lease", "renew", "-format=json"}
		if inc != "" {
			args = append(args, "-increment="+inc)
		}
		out, err := s.CLIAs(app.Token(), append(args, sec.LeaseID)...)
		if err != nil {
			t.Fatalf("vault lease renew %s as the app: %v\n%s", inc, err, out)
		}
		var renewed struct {
			LeaseDuration int  `json:"lease_duration"`
			Renewable     bool `json:"renewable"`
			Data          map[string]interface{}
		}
		mustJSON(t, []byte(out[strings.Index(out, "{"):]), &renewed)
		t.Logf("renew increment=%q: lease_duration=%d renewable=%v", inc, renewed.LeaseDuration, renewed.Renewable)
		if renewed.LeaseDuration > 30 || renewed.LeaseDuration < 1 || len(renewed.Data) != 0 || !renewed.Renewable {
			t.Errorf("increment %q: lease_duration %d, renewable %v, data %v; want 1..30s, renewable, no data", inc, renewed.LeaseDuration, renewed.Renewable, renewed.Data)
		}
		if inc == "10" && renewed.LeaseDuration > 10 {
			t.Errorf("increment 10: lease_duration %d", renewed.LeaseDuration)
		}
		look, err := s.CLI("lease", "lookup", "-format=json", sec.LeaseID)
		if err != nil {
			t.Fatal(err)
		}
		var lk struct {
			Data struct {
				ExpireTime string `json:"expire_time"`
			} `json:"data"`
		}
		mustJSON(t, []byte(look), &lk)
		end, err := time.Parse(time.RFC3339Nano, lk.Data.ExpireTime)
		if err != nil {
			t.Fatal(err)
		}
		if end.After(expiresAt.Add(-margin)) || end.After(time.Now().Add(31*time.Second)) {
			t.Errorf("increment %q: the lease now ends %s: past expires_at-margin %s or now+ttl", inc, end, expiresAt.Add(-margin))
		}
	}

	if _, err := s.Client.Logical().Write("wetix/rotate", nil); err != nil {
		t.Fatal(err)
	}
	out, err := s.CLIAs(app.Token(), "lease", "renew", sec.LeaseID)
	if err == nil {
		t.Fatalf("renewal after rotate granted:\n%s", out)
	}
	msg := err.Error()
	if !strings.Contains(msg, "read <mount>/token again") || !strings.Contains(msg, "has been replaced") {
		t.Errorf("the refusal does not say why and what to do: %s", msg)
	}
	if strings.Contains(msg, "logical.Response{") {
		t.Errorf("the refusal the app sees is a Go struct dump, not a message:\n%s", msg)
	}
	if strings.Contains(msg, sec.Data["access_token"].(string)) {
		t.Errorf("the refusal carries the access token")
	}
}

// TestAgentThroughAPendingSecretChange runs Vault Agent with the README's
// template (ttl=5s, 40s tokens) through the README's secret change: a new
// client_secret WeTix does not accept (a typo) for 12s, then the right one.
// Reads serve the current token with a warning meanwhile; Agent must not
// loop (read, renewal refused, read: each read a new lease), and must render
// the new token within ttl of the change completing, never an expired one.
// (From the review of renewable leases, where it failed: 47 leases in 12s,
// and an expired token in the file for 7.5s.)
func TestAgentThroughAPendingSecretChange(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	const (
		accessTTL = 40 * time.Second
		ttl       = 5 * time.Second
		pending   = 12 * time.Second
	)
	s, emu := setup(t, wetixtest.Options{AccessTTL: accessTTL}, map[string]interface{}{"ttl": int(ttl.Seconds())})
	app := appClient(t, s, "wetix-read", readOnlyPolicy)
	agent := startAgent(t, s, app.Token())
	old := agent.rendered()

	before := vaulttest.LiveLeases(t, s.Client, "wetix")
	good := emu.MountConfig(nil)["client_secret"]
	if _, err := s.Client.Logical().Write("wetix/config", map[string]interface{}{"client_secret": "mistyped-secret"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(pending)
	during := vaulttest.LiveLeases(t, s.Client, "wetix") - before
	t.Logf("while the secret change was pending (%s): %d new leases under wetix/token/", pending, during)
	if limit := int(pending/ttl) + 3; during > limit {
		t.Errorf("Agent created %d leases in %s of a pending secret change (ttl %s); want at most %d: it loops read, renew (refused), read",
			during, pending, ttl, limit)
	}

	if _, err := s.Client.Logical().Write("wetix/config", map[string]interface{}{"client_secret": good, "verify": true}); err != nil {
		t.Fatalf("writing the right secret: %v", err)
	}
	changedAt := time.Now()
	if emu.LastIssued().AccessToken == old {
		t.Fatal("setup: the right secret brought no new token")
	}
	var movedAfter time.Duration
	expiredFor := longestExpired(agent.rendered, emu, time.Until(changedAt.Add(accessTTL)), func(tok string) {
		if movedAfter == 0 && tok != old {
			movedAfter = time.Since(changedAt)
		}
	})
	t.Logf("after the right secret: the file left the old token after %s; held an expired token for %s",
		movedAfter.Round(10*time.Millisecond), expiredFor.Round(10*time.Millisecond))
	if movedAfter == 0 || movedAfter > ttl+time.Second {
		t.Errorf("the file left the previous secret's token %s after the change completed (0 = not within %s); want within ttl+1s",
			movedAfter.Round(10*time.Millisecond), accessTTL)
	}
	if expiredFor > 0 {
		t.Errorf("the rendered file held an expired token for %s", expiredFor.Round(10*time.Millisecond))
	}
	if t.Failed() {
		t.Logf("agent log, wetix/token lines:\n%s", grepLines(agent.log(), "wetix/token"))
	}
}
