package wetix

import (
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// tick runs the periodic function the way Vault's rollback manager does.
func (h *harness) tick() error {
	h.t.Helper()
	_, err := h.b.HandleRequest(h.t.Context(), &logical.Request{Operation: logical.RollbackOperation, Path: "", Storage: h.storage})
	// The refresh runs in the background; wait for it as Vault would not.
	h.b.tokens.background.Wait()
	return err
}

func TestPeriodicDoesNothingWhileFresh(t *testing.T) {
	h := newHarness(t)
	if err := h.tick(); err != nil {
		t.Fatal(err)
	}
	h.configure(nil)
	h.readToken()
	h.clock.Advance(30 * time.Minute)
	if err := h.tick(); err != nil {
		t.Fatal(err)
	}
	h.wantCalls(1, 0)
}

func TestPeriodicRefreshesDueToken(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	old, _ := h.makeDue()
	if err := h.tick(); err != nil {
		t.Fatal(err)
	}
	h.wantCalls(0, 1)
	// The next read is served from what the tick stored: no upstream call.
	tok := h.readToken().Data["access_token"]
	if tok == old || tok != h.wetix.LastIssued().AccessToken {
		t.Fatal("read did not get the token the tick refreshed")
	}
	h.wantCalls(0, 1)
}

func TestPeriodicKeepsIdleMountAlive(t *testing.T) {
	// Access tokens outlive refresh tokens here, so only the refresh token's
	// own expiry can make the mount due: months of no reads must not let it
	// lapse.
	h := newHarness(t, func(o *wetixtest.Options) {
		o.AccessTTL = 30 * 24 * time.Hour
		o.RefreshTTL = 10 * 24 * time.Hour
	})
	h.configure(nil)
	h.readToken()
	for day := 1; day <= 60; day++ {
		h.clock.Advance(24 * time.Hour)
		if err := h.tick(); err != nil {
			t.Fatalf("day %d: %v", day, err)
		}
		if st := h.stored(); !h.wetix.IsRefreshTokenLive(st.RefreshToken) {
			t.Fatalf("day %d: the stored refresh token lapsed", day)
		}
	}
	cc, rf := h.calls()
	if cc != 1 || rf < 6 {
		t.Fatalf("over 60 idle days: %d client-credentials and %d refresh calls; want 1 and one refresh per ~9 days", cc, rf)
	}
	t.Logf("60 idle days, 10-day refresh tokens: %d refresh calls, %d client-credentials calls", rf, cc)
}

func TestPeriodicAndReadsShareOneRefresh(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.makeDue()
	h.wetix.Fault(wetixtest.Fault{Delay: 150 * time.Millisecond, Process: true, Times: 1})

	var wg sync.WaitGroup
	errs := make(chan error, 11)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs <- h.tick()
	}()
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := h.request(logical.ReadOperation, "token", nil)
			if err == nil && resp.IsError() {
				err = resp.Error()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	h.wantCalls(0, 1)
}

func TestNoRefreshLoopWhenWeTixStopsRotatingRefreshTokens(t *testing.T) {
	h := newHarness(t, func(o *wetixtest.Options) {
		o.AccessTTL = 30 * 24 * time.Hour
		o.RefreshTTL = 10 * 24 * time.Hour
	})
	h.configure(nil)
	h.readToken()
	// From now on WeTix answers without refresh tokens.
	h.wetix.Fault(wetixtest.Fault{OmitRefreshToken: true})
	h.clock.Advance(9*24*time.Hour + 12*time.Hour) // the refresh token is near its end
	for i := 0; i < 20; i++ {
		h.readToken()
		if err := h.tick(); err != nil {
			t.Fatal(err)
		}
	}
	cc, rf := h.calls()
	if cc+rf > 2 {
		t.Fatalf("%d upstream calls for 20 reads and ticks: a refresh on every read", cc+rf)
	}
}

// The real-Vault suites wait out the failure cooldown with a copy of it;
// this keeps the copy true.
func TestFailureCooldownMatchesRig(t *testing.T) {
	b := newBackend(hclog.NewNullLogger(), time.Now)
	if b.tokens.failureCooldown != vaulttest.FailureCooldown {
		t.Fatalf("the plugin's failure cooldown is %s, vaulttest.FailureCooldown %s: change one to match", b.tokens.failureCooldown, vaulttest.FailureCooldown)
	}
}
