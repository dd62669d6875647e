package client

import (
	"sync"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// userAgents starts an emulator that records the User-Agent of every request.
func userAgents(t *testing.T) (*wetixtest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	srv := wetixtest.New(wetixtest.Options{ClientID: "cid", ClientSecret: testSecret, AccessTTL: time.Hour, RefreshTTL: 2 * time.Hour,
		OnRequest: func(ri wetixtest.RequestInfo) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, ri.UserAgent)
		}})
	t.Cleanup(srv.Close)
	return srv, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), seen...)
	}
}

func TestEveryGrantSendsTheUserAgent(t *testing.T) {
	t.Parallel()
	const ua = "vault-plugin-secrets-wetix/v9.8.7"
	srv, seen := userAgents(t)
	c := New(Config{BaseURL: srv.URL(), ClientID: "cid", ClientSecret: testSecret, Timeout: 5 * time.Second, UserAgent: ua})
	p, err := c.ClientCredentials(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(t.Context(), p.RefreshToken); err != nil {
		t.Fatal(err)
	}
	// A refused grant is a call WeTix's support may be asked about too.
	if _, err := c.Refresh(t.Context(), p.RefreshToken); err == nil {
		t.Fatal("a spent refresh token was accepted")
	}
	got := seen()
	if len(got) != 3 {
		t.Fatalf("emulator saw %d requests, want 3", len(got))
	}
	for i, g := range got {
		if g != ua {
			t.Errorf("request %d: User-Agent %q, want %q", i, g, ua)
		}
	}
}

func TestUserAgentDefaultsToThePluginName(t *testing.T) {
	t.Parallel()
	srv, seen := userAgents(t)
	if _, err := newClient(srv.URL(), 5*time.Second).ClientCredentials(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := seen(); len(got) != 1 || got[0] != DefaultUserAgent {
		t.Fatalf("User-Agent %q, want %q", got, DefaultUserAgent)
	}
}
