package sandboxcheck

// WeTix behaviours its docs leave open, played by a RoundTripper in front of
// the emulator, that tried (in a fresh-context review) to make the rule
// question give a false verdict. A false verdict is the worst outcome: an
// integrator would ship signatures WeTix refuses; "not answered" is fine.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// signedReq is one signed GraphQL mutation as a WeTix would see it.
type signedReq struct {
	N         int // 1-based count of signed mutations seen
	Timestamp int64
	Hash      string
	Input     map[string]any
}

// wetixMiddle plays a WeTix in front of the emulator: for each signed
// mutation, decide gets the request and a forward func (the emulator's
// answer) and returns the answer to give. Everything else is forwarded.
type wetixMiddle struct {
	next   http.RoundTripper
	decide func(r signedReq, forward func() (int, []byte)) (int, []byte)

	mu      sync.Mutex
	n       int
	queries int
	grants  int

	refreshTokens []string // bodies of refreshes with a real token
}

func (m *wetixMiddle) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasPrefix(req.URL.Path, "/auth/") {
		m.mu.Lock()
		m.grants++
		if req.URL.Path == "/auth/refresh" && req.Body != nil {
			b, _ := io.ReadAll(req.Body)
			req.Body = io.NopCloser(bytes.NewReader(b))
			if !bytes.Contains(b, []byte(madeUpRefreshToken)) {
				m.refreshTokens = append(m.refreshTokens, string(b))
			}
		}
		m.mu.Unlock()
	}
	if !strings.HasSuffix(req.URL.Path, "/graphql") || req.Body == nil {
		return m.next.RoundTrip(req)
	}
	body, _ := io.ReadAll(req.Body)
	req.Body.Close()
	var parsed struct {
		Query     string `json:"query"`
		Variables struct {
			Input     map[string]any `json:"input"`
			Signature *struct {
				Timestamp int64  `json:"timestamp"`
				Hash      string `json:"hash"`
			} `json:"signature"`
		} `json:"variables"`
	}
	json.Unmarshal(body, &parsed)
	fwd := func() (int, []byte) {
		r2 := req.Clone(req.Context())
		r2.Body = io.NopCloser(bytes.NewReader(body))
		r2.ContentLength = int64(len(body))
		resp, err := m.next.RoundTrip(r2)
		if err != nil {
			return 599, []byte(err.Error())
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, b
	}
	var status int
	var out []byte
	if parsed.Variables.Signature == nil || m.decide == nil {
		if strings.HasPrefix(strings.TrimSpace(parsed.Query), "query") {
			m.mu.Lock()
			m.queries++
			m.mu.Unlock()
		}
		status, out = fwd()
	} else {
		m.mu.Lock()
		m.n++
		sr := signedReq{N: m.n, Timestamp: parsed.Variables.Signature.Timestamp, Hash: parsed.Variables.Signature.Hash, Input: parsed.Variables.Input}
		m.mu.Unlock()
		status, out = m.decide(sr, fwd)
	}
	return &http.Response{StatusCode: status, Status: fmt.Sprintf("%d x", status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(out)),
		ContentLength: int64(len(out)), Request: req}, nil
}

func gqlErr(msg, code string) []byte {
	e := map[string]any{"message": msg}
	if code != "" {
		e["extensions"] = map[string]any{"code": code}
	}
	b, _ := json.Marshal(map[string]any{"data": nil, "errors": []any{e}})
	return b
}

func accepted(status int, body []byte) bool {
	var out struct {
		Errors []any `json:"errors"`
	}
	json.Unmarshal(body, &out)
	return status == 200 && len(out.Errors) == 0
}

func newReviewFixture(t *testing.T, rule wetixtest.CanonicalRule, decide func(signedReq, func() (int, []byte)) (int, []byte)) (fixture, *wetixMiddle) {
	t.Helper()
	f := newFixture(t, wetixtest.Options{})
	if err := f.srv.SetCanonicalRule(rule); err != nil {
		t.Fatal(err)
	}
	m := &wetixMiddle{next: f.rec, decide: decide}
	f.cfg.Transport = m
	return f, m
}

// ruleNotFalse: the rule row must name the emulator's rule or say it cannot.
func ruleNotFalse(t *testing.T, rep Report, rule wetixtest.CanonicalRule) {
	t.Helper()
	a := answer(t, rep, QCanonicalRule)
	switch {
	case a.Verdict == Unanswered:
	case rule == wetixtest.RuleGo && a.Verdict == AsAssumed && strings.HasPrefix(a.Finding, "go ("):
	case rule == wetixtest.RuleLiteral && a.Verdict == Differs && strings.HasPrefix(a.Finding, "literal ("):
	default:
		t.Errorf("FALSE rule verdict behind a %s WeTix: %q %q", rule, a.Verdict, a.Finding)
	}
}

var rules = []wetixtest.CanonicalRule{wetixtest.RuleGo, wetixtest.RuleLiteral}

// Refusal messages carrying a request ID made only of letters
// (hex without a digit, or a word ID).
func TestCheckRuleIsNotFooledByRequestIDsWithoutDigits(t *testing.T) {
	words := []string{"deadbeef", "cafebabe", "facade", "badcafe", "feedface", "decade"}
	for _, rule := range rules {
		t.Run(string(rule), func(t *testing.T) {
			f, _ := newReviewFixture(t, rule, func(r signedReq, fwd func() (int, []byte)) (int, []byte) {
				s, b := fwd()
				var out map[string]any
				if json.Unmarshal(b, &out) == nil {
					if errs, ok := out["errors"].([]any); ok && len(errs) > 0 {
						m := errs[0].(map[string]any)
						m["message"] = fmt.Sprintf("%v (request %s)", m["message"], words[r.N%len(words)])
						b, _ = json.Marshal(out)
					}
				}
				return s, b
			})
			rep, _ := f.run(t)
			ruleNotFalse(t, rep, rule)
		})
	}
}

// A wrong signature answered with several errors in varying order.
func TestCheckRuleIsNotFooledBySeveralErrorsInVaryingOrder(t *testing.T) {
	for _, rule := range rules {
		for flip := 0; flip < 4; flip++ {
			t.Run(fmt.Sprintf("%s/%d", rule, flip), func(t *testing.T) {
				f, _ := newReviewFixture(t, rule, func(r signedReq, fwd func() (int, []byte)) (int, []byte) {
					s, b := fwd()
					sess := map[string]any{"message": "order session not found", "extensions": map[string]any{"code": "ORDER_SESSION_NOT_FOUND"}}
					if accepted(s, b) {
						out, _ := json.Marshal(map[string]any{"data": nil, "errors": []any{sess}})
						return 200, out
					}
					sig := map[string]any{"message": "signature does not verify", "extensions": map[string]any{"code": "INVALID_SIGNATURE"}}
					errs := []any{sig, sess}
					if (r.N+flip)%2 == 0 {
						errs = []any{sess, sig}
					}
					out, _ := json.Marshal(map[string]any{"data": nil, "errors": errs})
					return 200, out
				})
				rep, _ := f.run(t)
				ruleNotFalse(t, rep, rule)
			})
		}
	}
}

// timestampGuard refuses a timestamp already seen, before the signature.
func timestampGuard() func(int64) bool {
	var mu sync.Mutex
	seen := map[int64]bool{}
	return func(ts int64) bool {
		mu.Lock()
		defer mu.Unlock()
		was := seen[ts]
		seen[ts] = true
		return was
	}
}

// A rate limit from the Nth signed mutation on, as HTTP 429 or as a
// GraphQL error, in front of a timestamp replay guard.
func TestCheckRuleIsNotFooledByARateLimit(t *testing.T) {
	for _, kind := range []string{"http429", "graphql"} {
		for n := 1; n <= 6; n++ {
			for _, rule := range rules {
				t.Run(fmt.Sprintf("%s/N=%d/%s", kind, n, rule), func(t *testing.T) {
					seen := timestampGuard()
					f, _ := newReviewFixture(t, rule, func(r signedReq, fwd func() (int, []byte)) (int, []byte) {
						if r.N >= n {
							if kind == "http429" {
								return 429, []byte(`{"message":"Too Many Requests"}`)
							}
							return 200, gqlErr("rate limit exceeded, retry later", "RATE_LIMITED")
						}
						if seen(r.Timestamp) {
							return 200, gqlErr("this request was already seen", "REPLAYED")
						}
						return fwd()
					})
					rep, _ := f.run(t)
					ruleNotFalse(t, rep, rule)
				})
			}
		}
	}
}

// Timestamp windows narrower than the rule question's four seconds,
// both ways (the emulator's window), and a WeTix refusing any past
// timestamp more than 1 s old.
func TestCheckRuleIsNotFooledByANarrowTimestampWindow(t *testing.T) {
	for _, w := range []time.Duration{500 * time.Millisecond, time.Second, 1500 * time.Millisecond, 2 * time.Second, 3 * time.Second, 4 * time.Second} {
		for _, rule := range rules {
			t.Run(fmt.Sprintf("%v/%s", w, rule), func(t *testing.T) {
				f, _ := newReviewFixture(t, rule, nil)
				f.srv.SetSignatureWindow(w)
				rep, _ := f.run(t)
				ruleNotFalse(t, rep, rule)
			})
		}
	}
}

// When every send is refused as stale, the advice should point at the
// timestamp/clock, not at the public key or the session.
func TestCheckAdviceNamesTheClockWhenEveryTimestampIsRefused(t *testing.T) {
	f, _ := newReviewFixture(t, wetixtest.RuleGo, nil)
	f.srv.SetSignatureWindow(500 * time.Millisecond)
	rep, _ := f.run(t)
	a := answer(t, rep, QCanonicalRule)
	if a.Verdict != Unanswered {
		t.Fatalf("verdict %q", a.Verdict)
	}
	if !strings.Contains(a.Advice, "timestamp") && !strings.Contains(a.Advice, "clock") {
		t.Errorf("misleading advice: all four sends were refused STALE_TIMESTAMP (finding %q), advice %q blames the key or the session", a.Finding, a.Advice)
	}
}

// A WeTix refusing a timestamp not strictly greater than the last seen.
func TestCheckRuleHoldsBehindAWeTixWantingRisingTimestamps(t *testing.T) {
	for _, rule := range rules {
		t.Run(string(rule), func(t *testing.T) {
			var mu sync.Mutex
			var last int64
			f, _ := newReviewFixture(t, rule, func(r signedReq, fwd func() (int, []byte)) (int, []byte) {
				mu.Lock()
				ok := r.Timestamp > last
				if ok {
					last = r.Timestamp
				}
				mu.Unlock()
				if !ok {
					return 200, gqlErr("signature.timestamp must be greater than the previous one", "NONCE_REUSED")
				}
				return fwd()
			})
			rep, _ := f.run(t)
			ruleNotFalse(t, rep, rule)
		})
	}
}

// sessionWeTix: checks the session (before or after the signature); known
// sessions are single-use when singleUse; a unique key on accepted orders'
// timestamps (a guard that only sees orders that got through).
type sessionWeTix struct {
	before, singleUse, orderTimestampUnique bool
	known                                   string

	mu   sync.Mutex
	used map[string]bool
	ts   map[int64]bool
}

func (w *sessionWeTix) decide(r signedReq, fwd func() (int, []byte)) (int, []byte) {
	sk, _ := r.Input["sessionKey"].(string)
	sessionErr := func() ([]byte, bool) {
		w.mu.Lock()
		defer w.mu.Unlock()
		if sk != w.known {
			return gqlErr("order session not found", "ORDER_SESSION_NOT_FOUND"), true
		}
		if w.singleUse && w.used[sk] {
			return gqlErr("order session already used", "ORDER_SESSION_USED"), true
		}
		return nil, false
	}
	if w.before {
		if b, bad := sessionErr(); bad {
			return 200, b
		}
	}
	s, b := fwd()
	if !accepted(s, b) {
		return s, b
	}
	if !w.before {
		if b, bad := sessionErr(); bad {
			return 200, b
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.orderTimestampUnique && w.ts[r.Timestamp] {
		return 200, gqlErr("an order with this signature timestamp exists", "DUPLICATE_ORDER")
	}
	if w.ts == nil {
		w.ts, w.used = map[int64]bool{}, map[string]bool{}
	}
	w.ts[r.Timestamp] = true
	w.used[sk] = true
	return s, b
}

// Session checked before the signature, made-up session: cannot answer.
func TestCheckRuleIsNotAnsweredWhenTheSessionIsCheckedFirst(t *testing.T) {
	for _, rule := range rules {
		t.Run(string(rule), func(t *testing.T) {
			w := &sessionWeTix{before: true, known: "real-session"}
			f, _ := newReviewFixture(t, rule, w.decide)
			rep, _ := f.run(t)
			wantVerdict(t, rep, QCanonicalRule, Unanswered, "")
		})
	}
}

// A WeTix that answers the Nth signed mutation with a transient error
// (one 502 / one GraphQL internal error) and is otherwise the emulator.
func TestCheckRuleIsNotFooledByOneTransientError(t *testing.T) {
	for n := 1; n <= 6; n++ {
		for _, rule := range rules {
			t.Run(fmt.Sprintf("N=%d/%s", n, rule), func(t *testing.T) {
				f, _ := newReviewFixture(t, rule, func(r signedReq, fwd func() (int, []byte)) (int, []byte) {
					if r.N == n {
						return 200, gqlErr("internal error", "INTERNAL_SERVER_ERROR")
					}
					return fwd()
				})
				rep, _ := f.run(t)
				ruleNotFalse(t, rep, rule)
			})
		}
	}
}

// What docs/sandbox-check.md says the check costs a sandbox client.
func TestCheckCostsWhatTheDocsSay(t *testing.T) {
	f, m := newReviewFixture(t, wetixtest.RuleGo, func(r signedReq, fwd func() (int, []byte)) (int, []byte) { return fwd() })
	f.run(t)
	raw, err := os.ReadFile("../../docs/sandbox-check.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := strings.Join(strings.Fields(string(raw)), " ")
	distinct := map[string]bool{}
	for _, b := range m.refreshTokens {
		distinct[b] = true
	}
	t.Logf("signed mutations %d, queries %d, refreshes with a real token %d (%d distinct)", m.n, m.queries, len(m.refreshTokens), len(distinct))
	for _, c := range []struct {
		says string
		ok   bool
	}{
		{"four `createMovieOrder` attempts", m.n == 4},
		{"four cheap GraphQL queries", m.queries == 4},
		{"two refresh tokens spent (the first of them twice)", len(distinct) == 2 && len(m.refreshTokens) == 3},
	} {
		if !strings.Contains(doc, c.says) {
			t.Errorf("docs/sandbox-check.md no longer says %q: update this test with the docs", c.says)
		} else if !c.ok {
			t.Errorf("docs/sandbox-check.md says %q, but the check did otherwise", c.says)
		}
	}
}

// The emulator must share no code with the plugin's signature package.
func TestEmulatorSharesNoCodeWithThePlugin(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest").Output()
	if err != nil {
		t.Fatalf("go list -deps ./wetixtest: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "github.com/wetix-oss/") && l != "github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest" {
			t.Errorf("wetixtest depends on %s", l)
		}
	}
}
