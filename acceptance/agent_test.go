package acceptance

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// issueLog records when the emulator issued each pair, as the moment of a
// refresh: the answer time, which the plugin sees a network hop later.
type issueLog struct {
	mu    sync.Mutex
	times []time.Time
}

func (l *issueLog) onRequest(ri wetixtest.RequestInfo) {
	if ri.Grant != "" && ri.Status == 200 {
		l.mu.Lock()
		l.times = append(l.times, time.Now())
		l.mu.Unlock()
	}
}

func (l *issueLog) at(i int) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i >= len(l.times) {
		return time.Time{}, false
	}
	return l.times[i], true
}

// renderingAgent is `vault agent` with a token_file auto-auth and the
// README's template rendering wetix/token's access_token to dest.
type renderingAgent struct {
	dest string
	log  func() string
}

// rendered is the token in the template's file now.
func (a renderingAgent) rendered() string {
	b, _ := os.ReadFile(a.dest)
	return string(bytes.TrimSpace(b))
}

// startAgent runs Agent as token and returns once it has rendered a token.
func startAgent(t *testing.T, s *vaulttest.Server, token string) renderingAgent {
	t.Helper()
	return startAgentOn(t, s, token, "wetix/token")
}

// startAgentOn is startAgent with the template reading path's access_token.
func startAgentOn(t *testing.T, s *vaulttest.Server, token, path string) renderingAgent {
	t.Helper()
	dir := t.TempDir()
	dest := filepath.Join(dir, "wetix-token")
	conf := fmt.Sprintf(`
vault { address = %q }
%s
template_config { exit_on_retry_failure = true }
template {
  contents    = "{{ with secret \"%s\" }}{{ .Data.access_token }}{{ end }}"
  destination = %q
}
`, s.Addr, vaulttest.TokenFileAutoAuth(vaulttest.WriteTokenFile(t, dir, token)), path, dest)
	agent := renderingAgent{dest: dest, log: vaulttest.StartDaemon(t, "agent", dir, conf, "-log-level=trace").Log}
	if !vaulttest.WaitFor(30*time.Second, func() bool { return agent.rendered() != "" }) {
		t.Fatalf("Agent rendered nothing in 30s; agent log:\n%s", agent.log())
	}
	return agent
}

// longestExpired polls read every 50ms for d, handing each token to see, and
// returns the longest stretch during which it held a token WeTix no longer
// accepts.
func longestExpired(read func() string, emu *wetixtest.Server, d time.Duration, see func(tok string)) time.Duration {
	var longest time.Duration
	var since time.Time
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		tok := read()
		see(tok)
		if emu.IsAccessTokenValid(tok) {
			since = time.Time{}
			continue
		}
		if since.IsZero() {
			since = time.Now()
		}
		longest = max(longest, time.Since(since))
	}
	return longest
}

// TestAgentRerendersRefreshedToken runs Vault Agent with the README's
// template against 30s tokens and a 5s ttl, over two refreshes. An app
// reading wetix/token refreshes it when it goes due: when it can no longer
// carry a full 5s lease (about 6.5s before expiry). Agent holds a renewable
// lease and renews it right after the read, then at about 70% of each lease
// (consul-template's renewer, Vault's LifetimeWatcher);
// the first renewal after the refresh is refused (the lease's token was
// replaced), so Agent reads again and renders the new token. Agent renews
// within a lease's life, so the file lags the refresh by less than ttl; we
// allow 0.95*ttl plus 1s of render time.
//
// The file must also change before the old token expires, or the app would
// be handed a dead token. Leases end a margin (5% of the life) before expiry,
// and the plugin may place expiry up to 1s late (WeTix's exp is whole
// seconds), so the slack is about 5.25% of the life minus 1s: ~0.05s at
// 20s tokens, ~0.6s at 30s, a minute for WeTix's real 60-day tokens.
func TestAgentRerendersRefreshedToken(t *testing.T) {
	vaulttest.RequireLong(t)
	const (
		accessTTL = 30 * time.Second
		ttl       = 5 * time.Second
		refreshes = 2
	)
	var issues issueLog
	s, emu := setup(t, wetixtest.Options{AccessTTL: accessTTL, OnRequest: issues.onRequest},
		map[string]interface{}{"ttl": int(ttl.Seconds())})
	app := appClient(t, s, "wetix-read", readOnlyPolicy)
	agent := startAgent(t, s, app.Token())

	bound := time.Duration(0.95*float64(ttl)) + time.Second
	worst, delays := watchRerenders(t, agent, emu, &issues, refreshes, accessTTL, bound, func() {
		// The app's read is what refreshes the token as soon as it is due.
		vaulttest.MustReadToken(t, app, "wetix")
	})
	if t.Failed() {
		t.Logf("agent log, wetix/token lines:\n%s", grepLines(agent.log(), "wetix/token", "rendered", "authenticat"))
	}
	t.Logf("AGENT_RERENDER_DELAY=%.2fs (worst of %d refreshes: %s; ttl %s, tokens %s)",
		worst.Seconds(), refreshes, strings.Join(delays, ", "), ttl, accessTTL)
	if n := emu.Calls(wetixtest.GrantRefresh); n != refreshes {
		t.Errorf("%d refresh-grant calls for %d refreshes", n, refreshes)
	}
}

// watchRerenders waits for the file to move off each of refreshes tokens,
// calling app every 250ms meanwhile (the app's read is what refreshes a due
// token), and checks each move: to the token issued last, before the old one
// expired, at most bound after WeTix issued the new one. It returns the
// worst delay and each one, formatted.
func watchRerenders(t *testing.T, agent renderingAgent, emu *wetixtest.Server, issues *issueLog, refreshes int,
	accessTTL, bound time.Duration, app func()) (time.Duration, []string) {
	t.Helper()
	var worst time.Duration
	var delays []string
	for n := 1; n <= refreshes; n++ {
		old := emu.LastIssued()
		if got := agent.rendered(); got != old.AccessToken {
			t.Fatalf("the file holds %.20q..., not the token issued last", got)
		}
		seenAt := waitForChange(t, agent.rendered, old.AccessToken, accessTTL+10*time.Second, app)
		if seenAt.IsZero() {
			t.Fatalf("Agent did not re-render within %s; agent log:\n%s", accessTTL+10*time.Second, agent.log())
		}
		// Agent writes the file once per render, so its mtime is when the
		// render happened, however late this busy loop noticed it.
		fi, err := os.Stat(agent.dest)
		if err != nil {
			t.Fatal(err)
		}
		changedAt := fi.ModTime()
		refreshedAt, ok := issues.at(n)
		if !ok {
			t.Fatalf("the file changed but the emulator issued no new token")
		}
		if got := agent.rendered(); got != emu.LastIssued().AccessToken {
			t.Errorf("the file holds a token that is not the one issued last")
		}
		if !changedAt.Before(old.AccessExpiresAt) {
			t.Errorf("the file changed at %s, after the old token expired at %s",
				changedAt.Format(time.RFC3339Nano), old.AccessExpiresAt.Format(time.RFC3339))
		}
		delay := changedAt.Sub(refreshedAt)
		t.Logf("refresh %d: issued %s, file written %s (seen %s), old token expired %s", n, refreshedAt.Format("15:04:05.000"),
			changedAt.Format("15:04:05.000"), seenAt.Format("15:04:05.000"), old.AccessExpiresAt.Format("15:04:05.000"))
		delays = append(delays, fmt.Sprintf("%.2fs", delay.Seconds()))
		worst = max(worst, delay)
		if delay > bound {
			t.Errorf("refresh %d: Agent re-rendered %s after it; want at most %s", n, delay, bound)
		}
	}
	return worst, delays
}

// TestAgentNeverRendersAnExpiredToken is issue 9's Agent scenario: the
// README's template, 20s tokens, ttl=5s, and nothing but Agent reading. A
// lease cut to 1s near a token's end made Agent re-read within the same
// wall-clock second; consul-template drops a fetch whose index (the Unix
// second) did not change, so the file kept the old token for about 2s after
// it expired. With every lease exactly ttl, the file must hold a token WeTix
// accepts at every moment.
func TestAgentNeverRendersAnExpiredToken(t *testing.T) {
	vaulttest.RequireLong(t)
	// 50s of 19s tokens refreshed about 6s before expiry: 3 or 4 tokens.
	watchAgentNeverRendersExpired(t, "wetix/token", readOnlyPolicy, "wetix/token", "rendered")
}

// expiryWatch is the rig of the "never renders an expired token" tests: 20s
// tokens, ttl=5s, Agent the only reader, watched for 50s (two and a half
// token lifetimes).
const (
	expiryWatchAccessTTL = 20 * time.Second
	expiryWatchTTL       = 5 * time.Second
	expiryWatchFor       = 50 * time.Second
)

// watchAgentNeverRendersExpired runs Agent with a template over path, with
// an app token holding policy and nothing else reading, and fails if the
// rendered file ever holds a token WeTix no longer accepts or Agent moves to
// fewer than 3 tokens in the watch (a new one is due about every 13-15s).
// logWords pick the agent log lines shown on failure.
func watchAgentNeverRendersExpired(t *testing.T, path, policy string, logWords ...string) (*vaulttest.Server, renderingAgent) {
	t.Helper()
	s, emu := setup(t, wetixtest.Options{AccessTTL: expiryWatchAccessTTL}, map[string]interface{}{"ttl": int(expiryWatchTTL.Seconds())})
	app := appClient(t, s, "agent-app", policy)
	agent := startAgentOn(t, s, app.Token(), path)
	seen := map[string]bool{}
	expiredFor := longestExpired(agent.rendered, emu, expiryWatchFor, func(tok string) { seen[tok] = true })
	if expiredFor > 0 {
		t.Fatalf("the rendered file held an expired token for %s; agent log:\n%s", expiredFor.Round(10*time.Millisecond),
			grepLines(agent.log(), logWords...))
	}
	if len(seen) < 3 {
		t.Fatalf("Agent rendered %d distinct tokens of %s in %s, want a new one about every 13-15s; agent log:\n%s", len(seen), path,
			expiryWatchFor, grepLines(agent.log(), logWords...))
	}
	t.Logf("AGENT_RENDERED_TOKENS path=%s: %d in %s, never an expired one (ttl %s, tokens %s)", path, len(seen), expiryWatchFor,
		expiryWatchTTL, expiryWatchAccessTTL)
	return s, agent
}

// waitForChange polls the file every 10ms until it no longer holds old,
// calling app every 250ms meanwhile, and returns when it changed (zero if it
// did not within d).
func waitForChange(t *testing.T, read func() string, old string, d time.Duration, app func()) time.Time {
	t.Helper()
	var lastApp time.Time
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if read() != old {
			return time.Now()
		}
		if time.Since(lastApp) >= 250*time.Millisecond {
			app()
			lastApp = time.Now()
		}
	}
	return time.Time{}
}

// grepLines keeps the lines of text that contain any of words.
func grepLines(text string, words ...string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				out = append(out, line)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
