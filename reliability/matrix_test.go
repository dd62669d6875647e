package reliability

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// faultClass is what the documented behaviour (tokens.go) says about a fault.
type faultClass int

const (
	// transient: 5xx, 429, timeouts, resets, unreadable answers. Retried with
	// backoff (4 attempts); then the old token with a warning if it outlives
	// the config ttl (+margin), else an error.
	transient faultClass = iota
	// invalidClient fails at once, naming `vault write <mount>/config ...`.
	invalidClient
	// invalidGrant (refresh grant only) falls back to the client-credentials grant.
	invalidGrant
	// benign: the answer is odd but usable (no expires_in, no refresh_token).
	benign
)

type faultSpec struct {
	slug, name string
	class      faultClass
	fault      wetixtest.Fault
	retryAfter time.Duration // the Retry-After the fault sends
}

// requestTimeout is the config request_timeout of every matrix mount, and
// slowDelay the delay of the "slow answer" fault, well past it.
const (
	requestTimeout = 2 * time.Second
	slowDelay      = 5 * time.Second
	matrixTTL      = 5 * time.Second // config ttl
)

var matrixFaults = []faultSpec{
	{slug: "500", name: "HTTP 500", class: transient, fault: wetixtest.FaultStatus(http.StatusInternalServerError, "")},
	{slug: "502", name: "HTTP 502", class: transient, fault: wetixtest.FaultStatus(http.StatusBadGateway, "")},
	{slug: "503", name: "HTTP 503", class: transient, fault: wetixtest.FaultStatus(http.StatusServiceUnavailable, "")},
	{slug: "429", name: "HTTP 429, no Retry-After", class: transient, fault: wetixtest.FaultStatus(http.StatusTooManyRequests, "")},
	{slug: "429-ra", name: "HTTP 429, Retry-After: 1", class: transient, fault: wetixtest.FaultRetryAfter(1), retryAfter: time.Second},
	{slug: "slow", name: "slow answer (5s > request_timeout 2s)", class: transient, fault: wetixtest.Fault{Delay: slowDelay}},
	{slug: "reset", name: "connection reset after WeTix processed the request", class: transient, fault: wetixtest.Fault{Drop: true, Process: true}},
	{slug: "truncated", name: "truncated body", class: transient, fault: wetixtest.Fault{Truncate: true}},
	{slug: "html", name: "HTML error page (nginx 502)", class: transient, fault: wetixtest.FaultHTML(http.StatusBadGateway)},
	{slug: "bad-json", name: "malformed JSON (200)", class: transient, fault: wetixtest.Fault{Body: `{"access_token":"eyJhbGciOiJIUzI1NiJ9.`}},
	{slug: "no-access-token", name: "200 without access_token", class: transient, fault: wetixtest.Fault{Body: `{"expires_in":3600,"token_type":"Bearer"}`}},
	{slug: "no-expires-in", name: "200 without expires_in", class: benign, fault: wetixtest.Fault{OmitExpiresIn: true}},
	{slug: "no-refresh-token", name: "answer without refresh_token", class: benign, fault: wetixtest.Fault{OmitRefreshToken: true}},
	{slug: "invalid-grant", name: "invalid_grant (refresh grant only)", class: invalidGrant, fault: wetixtest.FaultInvalidGrant().For(wetixtest.GrantRefresh)},
	{slug: "invalid-client", name: "invalid_client", class: invalidClient, fault: wetixtest.FaultInvalidClient()},
}

type timingSpec struct {
	slug, name            string
	accessTTL, refreshTTL time.Duration // emulator lifetimes
	// dueAfter is how long after the first read the token becomes due; 0
	// means there is no first read (the faulted read is the first).
	dueAfter   time.Duration
	background bool
}

// The plugin counts a lifetime as expires_in less 1s and refreshes in its
// last 10%: a 10s access token is due 8.1s after issue with under 1s left
// (less than the 5s ttl: an outage must end in an error), while a 30s
// refresh token is due after 26.1s although its 1h access token would
// outlive any lease (an outage must serve it stale). The test polls status
// for refresh_due from dueAfter on.
var matrixTimings = []timingSpec{
	{slug: "first", name: "first read (no token yet)", accessTTL: time.Hour},
	{slug: "due-access", name: "due on read: access token expiring (< ttl left)", accessTTL: 10 * time.Second, dueAfter: 8 * time.Second},
	{slug: "due-refresh", name: "due on read: refresh token expiring (access token outlives ttl)", accessTTL: time.Hour, refreshTTL: 30 * time.Second, dueAfter: 26 * time.Second},
	{slug: "periodic", name: "background: Vault's periodic func, then a read", accessTTL: time.Hour, refreshTTL: 30 * time.Second, dueAfter: 26 * time.Second, background: true},
}

// Outcomes of a read.
const (
	outServed        = "served"
	outStale         = "stale"
	outErrorUnavail  = "error:unavailable"
	outErrorClient   = "error:invalid_client"
	outErrorRejected = "error:rejected"
	outErrorPerm     = "error:permanent"
	outErrorOther    = "error:other"
	outUnexpected    = "unexpected"
)

// documented is what tokens.go promises for a fault at a timing.
func documented(c faultClass, tm timingSpec) string {
	switch c {
	case transient:
		if tm.refreshTTL > 0 { // the old access token outlives the ttl
			return outStale
		}
		return outErrorUnavail
	case invalidClient:
		return outErrorClient
	default:
		return outServed
	}
}

// documentedCalls is the upstream calls of the faulted refresh: one refresh
// grant when a refresh token is held, then the client-credentials grant
// (retried up to 4 attempts in all for transient faults).
func documentedCalls(c faultClass, tm timingSpec) upstreamCalls {
	first := tm.dueAfter == 0
	switch {
	case c == transient && first:
		return upstreamCalls{cc: 4}
	case c == transient:
		return upstreamCalls{rf: 1, cc: 3}
	case c == benign && !first:
		return upstreamCalls{rf: 1}
	case first:
		return upstreamCalls{cc: 1}
	default: // invalid_client, invalid_grant after a refresh grant
		return upstreamCalls{rf: 1, cc: 1}
	}
}

const reconfigureHint = "vault write <mount>/config client_id=... client_secret=..."

// classifyRead names what an app got. old is the token held before the
// faulted read ("" when none).
func classifyRead(r vaulttest.TokenRead, old string) (string, string) {
	if r.Err != nil {
		msg := oneLine(vaulttest.ErrText(r.Err))
		switch {
		case strings.Contains(msg, "WeTix is unavailable"):
			return outErrorUnavail, msg
		case strings.Contains(msg, "WeTix rejected the client credentials") && strings.Contains(msg, reconfigureHint):
			return outErrorClient, msg
		case strings.Contains(msg, "WeTix rejected the refresh token"):
			return outErrorRejected, msg
		case strings.Contains(msg, "WeTix refused the token request"):
			return outErrorPerm, msg
		default:
			return outErrorOther, msg
		}
	}
	switch {
	case len(r.Warnings) > 0 && old != "" && r.AccessToken == old:
		return outStale, strings.Join(r.Warnings, " ")
	case len(r.Warnings) == 0 && r.AccessToken != "" && r.AccessToken != old:
		return outServed, ""
	default:
		return outUnexpected, fmt.Sprintf("token changed=%v warnings=%q", r.AccessToken != old, r.Warnings)
	}
}

// cell is one fault x timing result.
type cell struct {
	done       bool
	want, got  string
	calls      upstreamCalls // of the faulted read (of the periodic run for background)
	interfered bool          // a rollback tick refreshed before the test did
	message    string
	recovered  bool
	elapsed    time.Duration
	// refreshedAgain: the read right after a successful refresh called
	// WeTix again, i.e. the new token was still due.
	refreshedAgain bool
	retryAfterRow  bool // a 429 row: the read's duration is shown
}

// TestFaultMatrix installs each upstream fault at each point of the token
// lifecycle on its own mount and emulator of one Vault server, records what
// the read returned, checks it against the documented behaviour, then clears
// the fault and checks that a read after the cooldown succeeds unaided.
//
// The background column runs the plugin's real PeriodicFunc: Vault calls it
// on every rollback tick (once a minute, not configurable on a server), and
// also once, synchronously, when a mount is moved (sys/remount runs a final
// rollback on the source path). The test moves the mount to trigger it.
func TestFaultMatrix(t *testing.T) {
	srv, _ := vaulttest.StartWithPlugin(t, vaulttest.Options{})
	start := time.Now()

	cells := make([][]*cell, len(matrixFaults))
	var wg sync.WaitGroup
	for fi, f := range matrixFaults {
		cells[fi] = make([]*cell, len(matrixTimings))
		for ti, tm := range matrixTimings {
			c := &cell{}
			cells[fi][ti] = c
			wg.Add(1)
			// Cases sleep most of the time (waiting for a token to become
			// due, for the cooldown); run them all at once rather than at
			// -parallel (GOMAXPROCS) at a time.
			go func() {
				defer wg.Done()
				t.Run(f.slug+"/"+tm.slug, func(t *testing.T) { runMatrixCase(t, srv, f, tm, c) })
			}()
		}
	}
	wg.Wait()

	table := renderMatrix(cells)
	t.Logf("fault matrix (%s):\n%s", time.Since(start).Round(time.Second), table)
	if os.Getenv("WETIX_WRITE_DOCS") == "1" {
		path := filepath.Join(vaulttest.RepoRoot(), "docs", "fault-matrix.md")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
}

func runMatrixCase(t *testing.T, srv *vaulttest.Server, f faultSpec, tm timingSpec, c *cell) {
	clientID := "client-" + f.slug + "-" + tm.slug
	secret := "secret-" + randomSuffix()
	em := wetixtest.New(wetixtest.Options{ClientID: clientID, ClientSecret: secret, AccessTTL: tm.accessTTL, RefreshTTL: tm.refreshTTL})
	defer em.Close()
	mount := "fm-" + f.slug + "-" + tm.slug
	if err := srv.TryMount(mount, vaulttest.PluginVersion); err != nil {
		t.Fatalf("mount: %v", err)
	}
	cfg := map[string]interface{}{"ttl": int(matrixTTL.Seconds()), "request_timeout": int(requestTimeout.Seconds())}
	c.want = documented(f.class, tm)
	c.retryAfterRow = strings.HasPrefix(f.slug, "429") && !tm.background

	var old string
	if tm.dueAfter == 0 {
		// Fault first: a rollback tick between the config write and the
		// read would otherwise fetch a token unhindered.
		em.Fault(f.fault)
		vaulttest.Configure(t, srv.Client, mount, em, cfg)
	} else {
		vaulttest.Configure(t, srv.Client, mount, em, cfg)
		r0 := vaulttest.ReadToken(srv.Client, mount)
		if r0.Err != nil {
			t.Fatalf("first read, before any fault: %v", r0.Err)
		}
		old = r0.AccessToken
		// Fault before the token is due, so that a rollback tick landing in
		// the due window meets it too.
		em.Fault(f.fault)
		time.Sleep(time.Until(r0.Start.Add(tm.dueAfter)))
		if _, err := waitStatus(srv, mount, 15*time.Second, func(st map[string]interface{}) bool { return boolField(st, "refresh_due") }); err != nil {
			t.Fatalf("token never became due: %v", err)
		}
	}
	// Before the faulted read (or periodic run), only a rollback tick can
	// have called WeTix since the fault went in.
	armed := upstreamCalls{}
	if tm.dueAfter > 0 {
		armed = upstreamCalls{cc: 1} // the first read
	}
	pre := callsOf(em)
	c.interfered = pre != armed

	if tm.background {
		before, err := status(srv, mount)
		if err != nil {
			t.Fatal(err)
		}
		moved := mount + "-moved"
		if err := srv.Client.Sys().Remount(mount, moved); err != nil {
			t.Fatalf("remount (to run the periodic func): %v", err)
		}
		mount = moved
		// The periodic func starts the refresh in the background and
		// returns (Vault holds its state lock while it runs): wait until
		// status records the outcome.
		after := waitPeriodicOutcome(t, srv, mount, before)
		c.calls = callsOf(em).minus(pre)
		if !c.interfered && c.calls.total() == 0 {
			t.Fatalf("the periodic func did not call WeTix for a due token")
		}
		checkPeriodicStatus(t, f, before, after)
	}

	r := vaulttest.ReadToken(srv.Client, mount)
	c.elapsed = r.Elapsed()
	if !tm.background {
		c.calls = callsOf(em).minus(pre)
	}
	c.got, c.message = classifyRead(r, old)
	if c.got != c.want {
		t.Errorf("read outcome %s (%s), documented %s", c.got, c.message, c.want)
	}
	switch c.got {
	case outServed:
		if !em.IsAccessTokenValid(r.AccessToken) {
			t.Errorf("served an access token WeTix does not accept")
		}
	case outStale:
		if w := strings.Join(r.Warnings, " "); !strings.Contains(w, "serving the current token") {
			t.Errorf("stale token served with warning %q", w)
		}
	}
	if want := documentedCalls(f.class, tm); !c.interfered && c.calls != want {
		t.Errorf("upstream calls %s, documented %s", c.calls, want)
	}
	if f.retryAfter > 0 && !tm.background && !c.interfered && c.elapsed < 3*f.retryAfter {
		t.Errorf("Retry-After %s not honoured: 3 retries took %s", f.retryAfter, c.elapsed)
	}
	if st, err := status(srv, mount); err != nil {
		t.Error(err)
	} else if healthy := boolField(st, "healthy"); healthy != (c.got == outServed) {
		t.Errorf("status healthy=%v after a %s read (last_error %q)", healthy, c.got, stringField(st, "last_error"))
	}

	// The next read: a failure is answered from the cooldown without calling
	// WeTix; a fresh token is served from memory without calling WeTix.
	pre2 := callsOf(em)
	r2 := vaulttest.ReadToken(srv.Client, mount)
	calls2 := callsOf(em).minus(pre2)
	got2, msg2 := classifyRead(r2, old)
	switch c.got {
	case outServed:
		if r2.Err != nil || r2.AccessToken != r.AccessToken || len(r2.Warnings) > 0 {
			t.Errorf("the read after a successful refresh: %s %s", got2, msg2)
		}
		if calls2.total() != 0 {
			c.refreshedAgain = true
			t.Errorf("the read right after a successful refresh called WeTix again (%s): the new token is still due", calls2)
		}
	default:
		if got2 != c.got {
			t.Errorf("the read after a failure: %s (%s), the first got %s", got2, msg2, c.got)
		}
		// The background case cannot tell when the periodic failure was.
		if !tm.background && calls2.total() != 0 && r2.Start.Sub(r.End) < vaulttest.FailureCooldown {
			t.Errorf("a read %s after a failed refresh called WeTix (%s) despite the %s cooldown", r2.Start.Sub(r.End).Round(time.Millisecond), calls2, vaulttest.FailureCooldown)
		}
	}

	// Recovery: clear the fault, wait out the cooldown, read. No operator
	// action.
	em.ClearFaults()
	time.Sleep(time.Until(r2.End.Add(vaulttest.FailureCooldown + 300*time.Millisecond)))
	r3 := vaulttest.ReadToken(srv.Client, mount)
	switch {
	case r3.Err != nil:
		t.Errorf("no recovery after the fault cleared: %s", oneLine(vaulttest.ErrText(r3.Err)))
	case len(r3.Warnings) > 0:
		t.Errorf("recovery read still warns: %q", r3.Warnings)
	case !em.IsAccessTokenValid(r3.AccessToken):
		t.Errorf("recovery read served a token WeTix does not accept")
	default:
		c.recovered = true
	}
	if st, err := status(srv, mount); err != nil {
		t.Error(err)
	} else if !boolField(st, "healthy") {
		t.Errorf("status not healthy after recovery: %v", st)
	}
	c.done = true
}

// checkPeriodicStatus: a background refresh is only visible in status.
func checkPeriodicStatus(t *testing.T, f faultSpec, before, after map[string]interface{}) {
	t.Helper()
	switch f.class {
	case transient, invalidClient:
		if intField(after, "failures") <= intField(before, "failures") || boolField(after, "healthy") || stringField(after, "last_error") == "" {
			t.Errorf("status after a failed periodic refresh: failures %d -> %d, healthy=%v, last_error=%q",
				intField(before, "failures"), intField(after, "failures"), boolField(after, "healthy"), stringField(after, "last_error"))
		}
		if f.class == invalidClient && !strings.Contains(stringField(after, "advice"), "vault write <mount>/config") {
			t.Errorf("status advice after invalid_client: %q", stringField(after, "advice"))
		}
	default:
		if intField(after, "refreshes") <= intField(before, "refreshes") || !boolField(after, "healthy") {
			t.Errorf("status after a successful periodic refresh: refreshes %d -> %d, healthy=%v",
				intField(before, "refreshes"), intField(after, "refreshes"), boolField(after, "healthy"))
		}
	}
}

var outcomeLabels = map[string]string{
	outServed:        "served (new token)",
	outStale:         "served stale + warning",
	outErrorUnavail:  "error: WeTix unavailable",
	outErrorClient:   "error: credentials rejected, names `vault write <mount>/config …`",
	outErrorRejected: "error: refresh token rejected",
	outErrorPerm:     "error: permanent refusal",
	outErrorOther:    "error (other)",
	outUnexpected:    "unexpected answer",
}

func renderMatrix(cells [][]*cell) string {
	var b strings.Builder
	b.WriteString("# Fault matrix\n\n")
	b.WriteString("Generated by `WETIX_WRITE_DOCS=1 go test ./reliability/ -run TestFaultMatrix`: a real Vault dev server\n")
	b.WriteString("runs the plugin; each cell is its own mount and WeTix emulator. The fault is installed on every\n")
	b.WriteString("call to WeTix until cleared (invalid_grant: refresh grant only). A cell shows what the read\n")
	b.WriteString("returned and the calls the failing refresh made to WeTix. Every cell was then checked to recover\n")
	b.WriteString("on its own: fault cleared, 5s cooldown waited out, the next read is served a valid token.\n\n")
	b.WriteString("Mount config: `ttl=5s request_timeout=2s`. Timings:\n\n")
	for _, tm := range matrixTimings {
		fmt.Fprintf(&b, "- **%s** — ", tm.name)
		switch {
		case tm.dueAfter == 0:
			b.WriteString("the mount has no token; the read runs the client-credentials grant.\n")
		case tm.background:
			b.WriteString("as the previous column, but the due refresh is run by the plugin's real PeriodicFunc, which Vault calls on its rollback tick (every 60s) and once when a mount is moved: the test triggers it with `sys/remount`. Then a read.\n")
		case tm.refreshTTL == 0:
			fmt.Fprintf(&b, "WeTix access tokens live %s; the read comes as soon as status says `refresh_due` (the last 10%% of the life) and the token has under 1s left, less than the ttl.\n", shortDur(tm.accessTTL))
		default:
			fmt.Fprintf(&b, "access tokens live %s but refresh tokens %s, so the token becomes due (refresh token in the last 10%% of its life) while the access token outlives any lease; the read comes as soon as status says `refresh_due`.\n", shortDur(tm.accessTTL), shortDur(tm.refreshTTL))
		}
	}
	b.WriteString("\n| Fault |")
	for _, tm := range matrixTimings {
		fmt.Fprintf(&b, " %s |", tm.name)
	}
	b.WriteString("\n|---|")
	for range matrixTimings {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for fi, f := range matrixFaults {
		fmt.Fprintf(&b, "| %s |", f.name)
		for _, c := range cells[fi] {
			b.WriteString(" " + cellText(c) + " |")
		}
		b.WriteString("\n")
	}
	b.WriteString("\nCalls: `rf` refresh grant, `cc` client-credentials grant. Transient faults are tried up to 4 times in\n")
	b.WriteString("all; a failed refresh grant falls back to the client-credentials grant. A cell that differs from the\n")
	b.WriteString("documented behaviour is marked **MISMATCH**; one that did not recover, **NO RECOVERY**. The 429 rows\n")
	b.WriteString("show how long the failing read took: 3 backoffs of 0.1-1s, or of at least the 1s Retry-After.\n\n")
	b.WriteString("## Texts\n\nThe first error or warning each fault produced:\n\n")
	for fi, f := range matrixFaults {
		seen := map[string]bool{}
		for _, c := range cells[fi] {
			if c.message == "" || seen[c.got] {
				continue
			}
			seen[c.got] = true
			fmt.Fprintf(&b, "- %s, %s: %s\n", f.name, outcomeLabels[c.got], "`"+strings.ReplaceAll(c.message, "`", "'")+"`")
		}
	}
	return b.String()
}

// shortDur prints 1h rather than 1h0m0s.
func shortDur(d time.Duration) string {
	s := d.String()
	s = strings.Replace(s, "m0s", "m", 1)
	return strings.Replace(s, "h0m", "h", 1)
}

func cellText(c *cell) string {
	if c.got == "" {
		return "(test did not finish)"
	}
	s := outcomeLabels[c.got]
	if c.got != c.want {
		s = "**MISMATCH** " + s + " (documented: " + outcomeLabels[c.want] + ")"
	}
	var calls []string
	if c.calls.rf > 0 {
		calls = append(calls, fmt.Sprintf("%d rf", c.calls.rf))
	}
	if c.calls.cc > 0 {
		calls = append(calls, fmt.Sprintf("%d cc", c.calls.cc))
	}
	if len(calls) > 0 {
		s += " · " + strings.Join(calls, " + ")
	}
	if c.retryAfterRow {
		s += fmt.Sprintf(" in %.1fs", c.elapsed.Seconds())
	}
	if c.interfered {
		s += " (a rollback tick refreshed first)"
	}
	if c.refreshedAgain {
		s += " · **BUG: every following read refreshes again**"
	}
	if !c.recovered {
		s += " · **NO RECOVERY**"
	}
	return s
}

// waitPeriodicOutcome polls status until a background refresh has counted
// a success or a failure, for at most 60s (a full retry round is shorter).
func waitPeriodicOutcome(t *testing.T, srv *vaulttest.Server, mount string, before map[string]interface{}) map[string]interface{} {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		after, err := status(srv, mount)
		if err != nil {
			t.Fatal(err)
		}
		if intField(after, "refreshes") > intField(before, "refreshes") || intField(after, "failures") > intField(before, "failures") {
			return after
		}
		if time.Now().After(deadline) {
			t.Fatalf("the background refresh recorded no outcome in 60s: %v", after)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
