package reliability

import (
	"fmt"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

type crashStep int

const (
	// crashBeforeUpstream: the refresh request reached WeTix, which has not
	// acted on it yet (Delay without Process): the refresh token is unspent.
	crashBeforeUpstream crashStep = iota
	// crashAfterProcessed: WeTix spent the refresh token and issued a new
	// pair, but the answer never reached the plugin (Delay with Process).
	crashAfterProcessed
	// crashAfterWrite: the refresh succeeded and was stored.
	crashAfterWrite
)

// TestCrashSafety kills the plugin process (kill -9) at each step of a
// refresh of a due token, with single-use refresh tokens, and checks what
// comes after: reads succeed, a refresh token that may have been spent is
// never presented again, the client-credentials grant recovers when one was
// lost, a stored pair survives, and status tells the truth throughout.
func TestCrashSafety(t *testing.T) {
	srv, _ := vaulttest.StartWithPlugin(t, vaulttest.Options{})
	steps := []struct {
		slug string
		step crashStep
	}{
		{"before-upstream-answer", crashBeforeUpstream},
		{"after-wetix-processed", crashAfterProcessed},
		{"after-store", crashAfterWrite},
	}
	for _, s := range steps {
		t.Run(s.slug, func(t *testing.T) { runCrash(t, srv, s.slug, s.step) })
	}
}

func runCrash(t *testing.T, srv *vaulttest.Server, slug string, step crashStep) {
	clientID, secret := "client-crash-"+slug, "secret-"+randomSuffix()
	// 10s access tokens: due (and refreshed by a read) 8.1s after issue.
	em := wetixtest.New(wetixtest.Options{ClientID: clientID, ClientSecret: secret, AccessTTL: 10 * time.Second})
	defer em.Close()
	mount := "crash-" + slug
	if err := srv.TryMount(mount, vaulttest.PluginVersion); err != nil {
		t.Fatal(err)
	}
	vaulttest.Configure(t, srv.Client, mount, em, map[string]interface{}{"ttl": 5})
	r0 := vaulttest.ReadToken(srv.Client, mount)
	if r0.Err != nil {
		t.Fatalf("first read: %v", r0.Err)
	}
	heldRefresh := em.LastIssued().RefreshToken // the refresh token the plugin now holds
	time.Sleep(time.Until(r0.Start.Add(8 * time.Second)))
	if _, err := waitStatus(srv, mount, 15*time.Second, func(st map[string]interface{}) bool { return boolField(st, "refresh_due") }); err != nil {
		t.Fatal(err)
	}

	const hold = time.Minute // far longer than the test needs to kill
	switch step {
	case crashBeforeUpstream:
		em.Fault(wetixtest.Fault{Delay: hold}.For(wetixtest.GrantRefresh).Limit(1))
	case crashAfterProcessed:
		em.Fault(wetixtest.Fault{Delay: hold, Process: true}.For(wetixtest.GrantRefresh).Limit(1))
	}
	base := callsOf(em)
	baseRefreshOK := em.Successes(wetixtest.GrantRefresh)

	inflight := make(chan vaulttest.TokenRead, 1)
	go func() { inflight <- vaulttest.ReadToken(srv.Client, mount) }()
	var served vaulttest.TokenRead // what the refreshing read returned (crashAfterWrite)
	switch step {
	case crashBeforeUpstream:
		vaulttest.Await(t, 30*time.Second, "the refresh request to reach WeTix", func() bool { return em.Calls(wetixtest.GrantRefresh) > base.rf })
	case crashAfterProcessed:
		vaulttest.Await(t, 30*time.Second, "WeTix to spend the refresh token", func() bool { return em.Successes(wetixtest.GrantRefresh) > baseRefreshOK })
	case crashAfterWrite:
		served = <-inflight
		if served.Err != nil || len(served.Warnings) > 0 || served.AccessToken == r0.AccessToken {
			t.Fatalf("the refresh before the crash did not succeed: err=%v warnings=%q", served.Err, served.Warnings)
		}
	}
	killed := killPlugin(t, srv)
	crashed := callsOf(em)
	liveBefore := em.IsRefreshTokenLive(heldRefresh)
	// Vault may re-run the read in flight itself: when it sees the plugin
	// shut down it reloads it and retries the request once.
	var retried vaulttest.TokenRead
	if step != crashAfterWrite {
		retried = <-inflight
		t.Logf("the read in flight during kill -9 of pid %v got: err=%q warnings=%q", killed, oneLine(vaulttest.ErrText(retried.Err)), retried.Warnings)
		if retried.Err == nil && (len(retried.Warnings) > 0 || !em.IsAccessTokenValid(retried.AccessToken)) {
			t.Errorf("the read Vault retried after the crash got warnings %q, valid token=%v", retried.Warnings, em.IsAccessTokenValid(retried.AccessToken))
		}
	}

	// Status after the crash. Vault restarts the plugin, which knows only
	// what was stored. Vault's own behaviour: the first request after the
	// crash fail with gRPC Unavailable, because Vault reloads a plugin only
	// when a request fails with "plugin is shut down".
	var st map[string]interface{}
	var err error
	var failed []string
	for range 20 {
		if st, err = status(srv, mount); err == nil {
			break
		}
		failed = append(failed, oneLine(vaulttest.ErrText(err)))
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("status after the crash: %v", err)
	}
	t.Logf("requests that failed after the crash before Vault restarted the plugin: %d %q", len(failed), failed)
	if pids := srv.PluginPIDs(); len(pids) == 0 || slices.ContainsFunc(pids, func(p int) bool { return slices.Contains(killed, p) }) {
		t.Errorf("plugin not restarted: pids %v, killed %v", pids, killed)
	}
	switch {
	case step != crashAfterWrite && retried.Err == nil:
		// Vault's retry of the read already recovered, through the
		// client-credentials grant.
		if !boolField(st, "refresh_token_usable") || boolField(st, "refresh_due") || stringField(st, "last_grant") != "client_credentials" {
			t.Errorf("status after the retried read recovered: %v", st)
		}
	case step != crashAfterWrite:
		// The refresh token was marked sent before it left: in doubt.
		if boolField(st, "refresh_token_usable") || !boolField(st, "refresh_due") {
			t.Errorf("status after a crash mid-refresh: refresh_token_usable=%v refresh_due=%v, want false and true",
				boolField(st, "refresh_token_usable"), boolField(st, "refresh_due"))
		}
	default:
		if !boolField(st, "refresh_token_usable") || boolField(st, "refresh_due") || stringField(st, "last_grant") != "refresh_token" {
			t.Errorf("status after a crash after the store: %v", st)
		}
	}

	r1 := vaulttest.ReadToken(srv.Client, mount)
	after := callsOf(em).minus(crashed)
	if r1.Err != nil || len(r1.Warnings) > 0 || !em.IsAccessTokenValid(r1.AccessToken) {
		t.Fatalf("read after the crash: err=%q warnings=%q valid=%v", oneLine(vaulttest.ErrText(r1.Err)), r1.Warnings, em.IsAccessTokenValid(r1.AccessToken))
	}
	switch step {
	case crashBeforeUpstream, crashAfterProcessed:
		// Exactly one client-credentials grant (in Vault's retry of the
		// read in flight, or in the next read); the refresh token that was
		// in flight is never presented again.
		if after != (upstreamCalls{cc: 1}) {
			t.Errorf("upstream calls after the crash: %s, want 0 refresh + 1 client_credentials", after)
		}
		if retried.Err == nil && r1.AccessToken != retried.AccessToken {
			t.Errorf("the read after Vault's retry got another token")
		}
	case crashAfterWrite:
		if r1.AccessToken != served.AccessToken || after.total() != 0 {
			t.Errorf("read after the crash: same token=%v, upstream calls %s; want the stored token and no call", r1.AccessToken == served.AccessToken, after)
		}
	}
	st, err = status(srv, mount)
	if err != nil {
		t.Fatal(err)
	}
	wantGrant := "client_credentials"
	if step == crashAfterWrite {
		wantGrant = "refresh_token"
	}
	if !boolField(st, "healthy") || !boolField(st, "refresh_token_usable") || boolField(st, "refresh_due") || stringField(st, "last_grant") != wantGrant {
		t.Errorf("status after recovery: healthy=%v refresh_token_usable=%v refresh_due=%v last_grant=%q, want true, true, false, %q",
			boolField(st, "healthy"), boolField(st, "refresh_token_usable"), boolField(st, "refresh_due"), stringField(st, "last_grant"), wantGrant)
	}

	// The refresh token now stored is live: a forced refresh uses the
	// refresh grant and WeTix accepts it.
	pre, preOK := callsOf(em), em.Successes(wetixtest.GrantRefresh)
	if _, err := srv.Client.Logical().Write(mount+"/rotate", nil); err != nil {
		t.Fatalf("rotate after recovery: %v", err)
	}
	rot := callsOf(em).minus(pre)
	if rot != (upstreamCalls{rf: 1}) || em.Successes(wetixtest.GrantRefresh) != preOK+1 {
		t.Errorf("rotate after recovery: %s, refresh successes +%d; want exactly one accepted refresh grant", rot, em.Successes(wetixtest.GrantRefresh)-preOK)
	}

	total := callsOf(em).minus(base)
	t.Logf("SUMMARY crash %s: killed pid %v; refresh token held before the crash live at WeTix afterwards=%v; calls after the crash until recovered: %s; refresh calls from the refreshing read to the end: %d (incl. the verifying rotate)",
		slug, killed, liveBefore, after, total.rf)
	switch step {
	case crashBeforeUpstream:
		if !liveBefore {
			t.Errorf("emulator spent a refresh token it never processed")
		}
	case crashAfterProcessed:
		if liveBefore {
			t.Errorf("emulator did not spend the processed refresh token")
		}
	}
}

// killPlugin sends SIGKILL to every plugin process of the server and waits
// until they are gone.
func killPlugin(t *testing.T, srv *vaulttest.Server) []int {
	t.Helper()
	pids := srv.PluginPIDs()
	if len(pids) == 0 {
		t.Fatal("no plugin process to kill")
	}
	for _, p := range pids {
		if err := syscall.Kill(p, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %d: %v", p, err)
		}
	}
	vaulttest.Await(t, 30*time.Second, fmt.Sprintf("plugin pids %v to exit", pids), func() bool {
		return !slices.ContainsFunc(srv.PluginPIDs(), func(p int) bool { return slices.Contains(pids, p) })
	})
	return pids
}
