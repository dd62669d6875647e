package wetix

// Regression tests for the lifecycle defects of issue 9: each places one
// interleaving exactly and checks what a user would notice.

import (
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// restart drops the backend and builds a new one on the same storage, as a
// plugin reload, upgrade or crash does.
func (h *harness) restart() {
	h.t.Helper()
	h.b.tokens.background.Wait()
	h.b = newTestBackend(h.t, h.clock, h.logs, logical.TestSystemView(), h.storage)
}

func withAccessTTL(d time.Duration) harnessOption {
	return func(o *wetixtest.Options) { o.AccessTTL = d }
}

func TestConfigDeleteRacingTheFirstConfigLoadStaysDeleted(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.readToken()
	h.restart()

	// The first read of the new backend stalls inside its storage read of
	// the config; the delete runs to completion meanwhile.
	entered, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool // not sync.Once: later readers must not wait for the first
	h.storage.setHook(func(op, key string) error {
		if op == "get" && key == configStoragePath && first.CompareAndSwap(false, true) {
			close(entered)
			<-release
		}
		return nil
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = h.request(logical.ReadOperation, "token", nil)
	}()
	<-entered
	if resp, err := h.request(logical.DeleteOperation, "config", nil); err != nil || resp.IsError() {
		t.Fatalf("config delete: %v %v", resp, err)
	}
	close(release)
	<-done
	h.b.tokens.background.Wait()

	if resp, err := h.request(logical.ReadOperation, "config", nil); err != nil || resp != nil {
		t.Fatalf("config still reads after its delete: %v %v", resp, err)
	}
	resp, err := h.request(logical.ReadOperation, "token", nil)
	if !strings.Contains(errText(resp, err), "not configured") {
		t.Fatalf("token read after the delete: %q, want not configured", errText(resp, err))
	}
	keys, _ := h.storage.List(context.Background(), "")
	if len(keys) != 0 {
		t.Fatalf("storage after the delete holds %v", keys)
	}
}

func TestReadJoiningAFailingRotateGetsWhatAPlainReadGets(t *testing.T) {
	t.Parallel() // waits on real request timeouts; shares nothing
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	old, _ := h.makeDue() // due, but outlives a 1m lease
	h.wetix.Fault(wetixtest.Fault{Status: 503, Delay: 100 * time.Millisecond})

	rotated := make(chan string)
	go func() {
		resp, err := h.request(logical.UpdateOperation, "rotate", nil)
		rotated <- errText(resp, err)
	}()
	// Join the rotation's flight while WeTix is still failing it.
	waitFor(t, func() bool { return h.wetix.Calls(wetixtest.GrantRefresh) > 0 })
	resp, err := h.request(logical.ReadOperation, "token", nil)
	if err != nil || resp.IsError() {
		t.Fatalf("a read that joined the failing rotate failed: %s", errText(resp, err))
	}
	if resp.Data["access_token"] != old || len(resp.Warnings) == 0 {
		t.Fatalf("want the current token with a warning, got warnings %v", resp.Warnings)
	}
	if msg := <-rotated; !strings.Contains(msg, "WeTix is unavailable") {
		t.Fatalf("rotate: %q, want its failure", msg)
	}
}

func TestInvalidClientAfterAnOutageIsReportedNotHidden(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	old, _ := h.makeDue()
	h.wetix.Fault(wetixtest.FaultStatus(503, ""))
	if resp := h.readToken(); resp.Data["access_token"] != old || len(resp.Warnings) == 0 {
		t.Fatal("setup: the outage read should serve the old token with a warning")
	}
	// WeTix is back, but the client secret was reset there.
	h.wetix.ClearFaults()
	h.wetix.SetClientSecret("reset-at-wetix")
	for i := 0; i < 2; i++ {
		resp, err := h.request(logical.ReadOperation, "token", nil)
		if msg := errText(resp, err); !strings.Contains(msg, "rejected the client credentials") || !strings.Contains(msg, "client_secret=") {
			t.Fatalf("read %d after the secret was rejected: %q (warnings %v), want the fix-your-client_secret error", i, msg, respWarnings(resp))
		}
	}
}

func respWarnings(resp *logical.Response) []string {
	if resp == nil {
		return nil
	}
	return resp.Warnings
}

func TestInvalidateDuringAFailingRefreshKeepsTheStoredCredential(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	old, _ := h.makeDue()
	// The refresh token goes out and WeTix answers 503 (not spent); so does
	// every client-credentials retry.
	before := h.stored()
	h.wetix.Fault(wetixtest.Fault{Status: 503, Delay: 30 * time.Millisecond})
	go func() {
		waitFor(t, func() bool { return h.wetix.Calls(wetixtest.GrantRefresh) > 0 })
		h.b.InvalidateKey(context.Background(), tokensStoragePath)
	}()
	resp := h.readToken()
	if resp.Data["access_token"] != old || len(resp.Warnings) == 0 {
		t.Fatalf("the servable token was not served with a warning: %v", resp.Warnings)
	}
	st := h.stored()
	if st.AccessToken != old || st.RefreshToken != before.RefreshToken || st.Generation != before.Generation {
		t.Fatal("the failed refresh overwrote the stored credential")
	}
	if st.Stats.Refreshes != before.Stats.Refreshes || st.Stats.Failures != before.Stats.Failures+1 {
		t.Fatalf("stats: %+v, before %+v", st.Stats, before.Stats)
	}
	// A crash now must not bring back the config's state: the refresh
	// token already went out once, so it is not sent again.
	h.wetix.ClearFaults()
	h.restart()
	h.clock.Advance(time.Minute)
	h.readToken()
	if n := h.wetix.Replays(); n != 0 {
		t.Fatalf("%d spent refresh tokens were sent again", n)
	}
}

func TestInvalidateDuringARefreshWhoseAnswerWasLostNeverUnmarksTheSpentToken(t *testing.T) {
	t.Parallel() // waits on real request timeouts; shares nothing
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m", "request_timeout": "1s"})
	_, spent := h.makeDue()
	// WeTix spends the refresh token, but its answer never arrives; the
	// client-credentials grant then answers without a refresh token.
	h.wetix.Fault(wetixtest.Fault{Delay: 3 * time.Second, Process: true, Times: 1}.For(wetixtest.GrantRefresh))
	h.wetix.Fault(wetixtest.Fault{OmitRefreshToken: true, Times: 1}.For(wetixtest.GrantClientCredentials))
	go func() {
		waitFor(t, func() bool { return h.wetix.Calls(wetixtest.GrantRefresh) > 0 })
		h.b.InvalidateKey(context.Background(), tokensStoragePath)
	}()
	h.readToken()
	if st := h.stored(); st.RefreshToken == spent && !st.RefreshSent {
		t.Fatal("the spent refresh token is stored as unsent")
	}
	// The next refresh must not send it again.
	h.clock.Advance(55 * time.Minute)
	h.readToken()
	if n := h.wetix.Replays(); n != 0 {
		t.Fatalf("%d spent refresh tokens were sent again", n)
	}
}

func TestConfigDeleteThatFailsHalfwayNeverResendsTheSeed(t *testing.T) {
	h := newHarness(t)
	seed := h.wetix.SeedRefreshToken()
	h.configure(map[string]interface{}{"refresh_token": seed})
	h.readToken() // spends the seed
	if h.wetix.IsRefreshTokenLive(seed) {
		t.Fatal("setup: the seed was not used")
	}

	// Whichever of the two deletes fails, a reload afterwards never sends
	// the spent seed again.
	for _, failing := range []string{configStoragePath, tokensStoragePath} {
		h.storage.setHook(func(op, key string) error {
			if op == "delete" && key == failing {
				return errStorageDown
			}
			return nil
		})
		resp, err := h.request(logical.DeleteOperation, "config", nil)
		if errText(resp, err) == "" {
			t.Fatalf("delete with %s failing reported success", failing)
		}
		h.storage.setHook(nil)
		h.restart()
		h.clock.Advance(55 * time.Minute)
		_, _ = h.request(logical.ReadOperation, "token", nil)
		if n := h.wetix.Replays(); n != 0 {
			t.Fatalf("delete failing at %s, then a reload: the spent seed was sent again (%d replays)", failing, n)
		}
	}
	// The config went in the second round: reads say so, and a second
	// delete clears what is left.
	resp, err := h.request(logical.ReadOperation, "token", nil)
	if !strings.Contains(errText(resp, err), "not configured") {
		t.Fatalf("after the config was deleted: %q", errText(resp, err))
	}
	if resp, err := h.request(logical.DeleteOperation, "config", nil); err != nil || resp.IsError() {
		t.Fatalf("second delete: %v", errText(resp, err))
	}
	if keys, _ := h.storage.List(context.Background(), ""); len(keys) != 0 {
		t.Fatalf("storage after the second delete holds %v", keys)
	}
}

func TestShortLivedTokensAreNeverLeasedPastTheirExpiry(t *testing.T) {
	// 8s tokens (7s once the client keeps a second back) cannot carry the
	// default 5m lease: they keep the 10% window and cut leases, and a
	// token that could not be leased honestly is due.
	h := newHarness(t, withAccessTTL(8*time.Second))
	h.configure(nil)
	for i := 0; i < 400; i++ {
		resp := h.readToken()
		exp, _ := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
		if !h.wetix.IsAccessTokenValid(resp.Data["access_token"].(string)) {
			t.Fatalf("step %d: served a token WeTix no longer accepts", i)
		}
		if leaseEnd := h.clock.Now().Add(resp.Secret.TTL); leaseEnd.After(exp) || resp.Secret.TTL < time.Second {
			t.Fatalf("step %d: lease of %s ends at %s, after the token's expiry %s", i, resp.Secret.TTL, leaseEnd.Format(time.RFC3339Nano), exp)
		}
		h.clock.Advance(50 * time.Millisecond)
	}
}

func TestLeasesAreExactlyTTLWhileWeTixIsHealthy(t *testing.T) {
	// The Agent scenario: 20s tokens, ttl=5s. A lease cut to 1s
	// makes Agent re-read within the same second, and consul-template then
	// drops the new token.
	h := newHarness(t, withAccessTTL(20*time.Second))
	h.configure(map[string]interface{}{"ttl": "5s"})
	seen := map[string]bool{}
	for i := 0; i < 600; i++ {
		resp := h.readToken()
		if resp.Secret.TTL != 5*time.Second {
			t.Fatalf("step %d (+%s): lease %s, want exactly 5s", i, time.Duration(i)*100*time.Millisecond, resp.Secret.TTL)
		}
		seen[resp.Data["access_token"].(string)] = true
		h.clock.Advance(100 * time.Millisecond)
	}
	// 60s of 19s tokens (20s less the second the client keeps back),
	// refreshed 6s before expiry: about every 13s.
	if n := len(seen); n < 4 || n > 6 {
		t.Fatalf("%d distinct tokens in 60s, want about 5 (one refresh per ~13s)", n)
	}
}

func TestUntrustedCertificateFailsAtOnceNamingTheHostAndTheFix(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("a request got through a failed certificate check")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.ErrorLog = discardLog()
	srv.StartTLS()
	defer srv.Close()

	h := newHarness(t)
	h.configure(map[string]interface{}{"base_url": srv.URL})
	resp, err := h.request(logical.ReadOperation, "token", nil)
	msg := errText(resp, err)
	for _, want := range []string{"certificate", strings.TrimPrefix(srv.URL, "https://"), "base_url", "CA"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "try again later") || strings.Contains(msg, "unavailable") {
		t.Fatalf("a certificate failure reads as an outage: %q", msg)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections: a certificate failure must not be retried", n)
	}
	status := h.status()
	if status["healthy"] != false || !strings.Contains(status["last_error"].(string), "certificate") || !strings.Contains(status["advice"].(string), "CA store") {
		t.Fatalf("status: %v", status)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }
