package acceptance

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// readOnlyPolicy is the app policy the README recommends.
const readOnlyPolicy = `path "wetix/token" { capabilities = ["read"] }`

// appClient returns a client holding a new token with only policy (plus
// Vault's default policy, which grants nothing under wetix/).
func appClient(t *testing.T, s *vaulttest.Server, policy, rules string) *api.Client {
	t.Helper()
	if err := s.Client.Sys().PutPolicy(policy, rules); err != nil {
		t.Fatalf("writing policy %s: %v", policy, err)
	}
	auth, err := s.Client.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{policy}, TTL: "1h"})
	if err != nil {
		t.Fatalf("creating a token: %v", err)
	}
	c, err := s.Client.Clone()
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(auth.Auth.ClientToken)
	return c
}

// TestPolicyReadTokenOnly: an app token with the README's policy reads the
// token, and gets 403 on the config, read or write; a denied write changes
// nothing.
func TestPolicyReadTokenOnly(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	s, emu := setup(t, wetixtest.Options{}, nil)
	app := appClient(t, s, "wetix-read", readOnlyPolicy)

	tok, _ := vaulttest.MustReadToken(t, app, "wetix")
	if tok != emu.LastIssued().AccessToken {
		t.Errorf("the app read a token that is not the one issued")
	}

	_, err := app.Logical().Read("wetix/config")
	wantDenied(t, "read wetix/config", err)
	_, err = app.Logical().Write("wetix/config", map[string]interface{}{"client_id": "evil", "client_secret": "x"})
	wantDenied(t, "write wetix/config", err)
	_, err = app.Logical().Write("wetix/rotate", nil)
	wantDenied(t, "write wetix/rotate", err)

	cfg, err := s.Client.Logical().Read("wetix/config")
	if err != nil || cfg.Data["client_id"] != "test-client-id" {
		t.Errorf("after the denied write, config client_id = %v (err %v); want it unchanged", cfg.Data["client_id"], err)
	}
	if n := emu.TotalCalls(); n != 1 {
		t.Errorf("%d calls to WeTix; the denied rotate must not have reached the plugin", n)
	}
}

func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("%s with the app token: err = %v; want 403 permission denied", what, err)
	}
}
