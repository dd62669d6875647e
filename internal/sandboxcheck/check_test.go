package sandboxcheck

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature/signaturetest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// tokenRecorder sits under the check's transport and keeps every token an
// answer carried, so a test can prove none reached the report.
type tokenRecorder struct {
	mu     sync.Mutex
	tokens []string
}

func (rec *tokenRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var pair struct{ AccessToken, RefreshToken string }
	var raw map[string]any
	if json.Unmarshal(body, &raw) == nil {
		pair.AccessToken, _ = raw["access_token"].(string)
		pair.RefreshToken, _ = raw["refresh_token"].(string)
	}
	rec.mu.Lock()
	for _, tok := range []string{pair.AccessToken, pair.RefreshToken} {
		if tok != "" {
			rec.tokens = append(rec.tokens, tok)
		}
	}
	rec.mu.Unlock()
	return resp, nil
}

type fixture struct {
	srv *wetixtest.Server
	cfg Config
	rec *tokenRecorder
}

// newFixture starts an emulator with the given options and the test signing
// key's public half registered, as an integrator would have sent it to WeTix.
func newFixture(t *testing.T, opts wetixtest.Options) fixture {
	t.Helper()
	srv := wetixtest.New(opts)
	t.Cleanup(srv.Close)
	_, key := signaturetest.Key(t)
	if err := srv.SetSigningPublicKey(signaturetest.PublicPEM(t, key)); err != nil {
		t.Fatal(err)
	}
	rec := &tokenRecorder{}
	return fixture{srv: srv, rec: rec, cfg: Config{
		OAuthURL: srv.URL(), GraphQLURL: srv.URL() + "/graphql",
		ClientID: "test-client-id", ClientSecret: "test-client-secret",
		SigningKey: key, Transport: rec,
	}}
}

func (f fixture) run(t *testing.T) (Report, string) {
	t.Helper()
	rep, err := Run(context.Background(), f.cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var md strings.Builder
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", md.String())
	return rep, md.String()
}

func answer(t *testing.T, rep Report, id string) Answer {
	t.Helper()
	for _, a := range rep.Answers {
		if a.ID == id {
			return a
		}
	}
	t.Fatalf("no answer %q in the report", id)
	return Answer{}
}

func wantVerdict(t *testing.T, rep Report, id string, want Verdict, findingHas string) {
	t.Helper()
	a := answer(t, rep, id)
	if a.Verdict != want || !strings.Contains(a.Finding, findingHas) {
		t.Errorf("%s: verdict %q, finding %q; want verdict %q and a finding containing %q", id, a.Verdict, a.Finding, want, findingHas)
	}
}

// The emulator's defaults are the plugin's assumptions, so every line must
// say "as assumed" and the run needs no action.
func TestCheckAgainstAWeTixThatDoesWhatThePluginAssumes(t *testing.T) {
	f := newFixture(t, wetixtest.Options{})
	rep, md := f.run(t)
	for _, a := range rep.Answers {
		if a.Verdict != AsAssumed {
			t.Errorf("%s: verdict %q (%s; advice %q), want %q", a.ID, a.Verdict, a.Finding, a.Advice, AsAssumed)
		}
	}
	if len(rep.Answers) != len(questionText) {
		t.Errorf("%d answers, want one per question (%d)", len(rep.Answers), len(questionText))
	}
	if rep.NeedsAction() {
		t.Error("NeedsAction is true for a WeTix that does what the plugin assumes")
	}
	wantVerdict(t, rep, QWrongSecret, AsAssumed, "HTTP 401")
	wantVerdict(t, rep, QDeadRefresh, AsAssumed, `"invalid_grant"`)
	wantVerdict(t, rep, QSingleUse, AsAssumed, "yes")
	wantVerdict(t, rep, QCanonicalRule, AsAssumed, "go (only the go signature")
	if strings.Count(md, "\n| `") != len(questionText) {
		t.Errorf("report does not have one table row per question:\n%s", md)
	}
	accepted, _ := f.srv.SignedMutations()
	if accepted["createMovieOrder"] != 1 {
		t.Errorf("emulator accepted %d createMovieOrder, want exactly the go-signed one", accepted["createMovieOrder"])
	}
}

func TestCheckReportsAWeTixThatVerifiesTheLiteralRule(t *testing.T) {
	f := newFixture(t, wetixtest.Options{})
	if err := f.srv.SetCanonicalRule(wetixtest.RuleLiteral); err != nil {
		t.Fatal(err)
	}
	rep, md := f.run(t)
	wantVerdict(t, rep, QCanonicalRule, Differs, "literal (only the literal signature")
	if !strings.Contains(md, "canonical_json=literal") || !rep.NeedsAction() {
		t.Errorf("the report must tell the operator to switch to canonical_json=literal:\n%s", md)
	}
}

func TestCheckReportsAWeTixThatRevokesAccessTokensOnRefresh(t *testing.T) {
	f := newFixture(t, wetixtest.Options{RevokeAccessOnRefresh: true})
	rep, _ := f.run(t)
	wantVerdict(t, rep, QAccessAfterRefr, Differs, "no: the access token from before the refresh is refused")
	// The refreshed pair is still the newest, so the later questions stand.
	wantVerdict(t, rep, QCanonicalRule, AsAssumed, "go")
}

func TestCheckReportsAWeTixWhoseClientCredentialsGrantRevokesEarlierTokens(t *testing.T) {
	f := newFixture(t, wetixtest.Options{RevokeOnClientCredentials: true})
	rep, _ := f.run(t)
	wantVerdict(t, rep, QAfterClientCreds, Differs, "an access token issued before it is refused")
	wantVerdict(t, rep, QAfterClientCreds, Differs, "a refresh token issued before it is refused")
	// The recovered pair is then the newest, and signs the probe.
	wantVerdict(t, rep, QCanonicalRule, AsAssumed, "go")
}

func TestCheckReportsReusableRefreshTokensAsHarmless(t *testing.T) {
	f := newFixture(t, wetixtest.Options{AllowRefreshReuse: true})
	rep, _ := f.run(t)
	wantVerdict(t, rep, QSingleUse, Harmless, "no: the spent refresh token was accepted again")
	if rep.NeedsAction() {
		t.Error("a reusable refresh token needs no action: the plugin never reuses one")
	}
}

// A WeTix whose error answers the plugin's client would misread: a wrong
// secret answered 403 with a GraphQL-style body, a dead refresh token 500.
// The proxy plays that WeTix; the emulator behind it stays the truth for
// everything else.
func TestCheckReportsErrorAnswersThePluginWouldMisread(t *testing.T) {
	f := newFixture(t, wetixtest.Options{})
	target, _ := url.Parse(f.srv.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	goodAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("test-client-id:test-client-secret"))
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		switch {
		case strings.HasPrefix(r.URL.Path, "/auth/") && r.Header.Get("Authorization") != goodAuth:
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"errors":[{"message":"forbidden","extensions":{"code":"FORBIDDEN"}}]}`)
		case r.URL.Path == "/auth/refresh" && bytes.Contains(body, []byte(madeUpRefreshToken)):
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `<html>oops</html>`)
		default:
			proxy.ServeHTTP(w, r)
		}
	})}
	ln := listen(t)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	f.cfg.OAuthURL = "http://" + ln.Addr().String()
	rep, _ := f.run(t)
	wantVerdict(t, rep, QWrongSecret, Differs, "HTTP 403")
	wantVerdict(t, rep, QDeadRefresh, Differs, "HTTP 500 not JSON")
	wantVerdict(t, rep, QGrantFields, AsAssumed, "HTTP 200")
}

func TestCheckReportNeverCarriesASecretOrToken(t *testing.T) {
	f := newFixture(t, wetixtest.Options{RevokeAccessOnRefresh: true})
	_, md := f.run(t)
	basic := base64.StdEncoding.EncodeToString([]byte("test-client-id:test-client-secret"))
	secrets := append([]string{"test-client-secret", basic, "wetix-check-wrong-secret"}, f.rec.tokens...)
	if len(f.rec.tokens) < 6 {
		t.Fatalf("saw %d tokens; the check should have been issued at least three pairs", len(f.rec.tokens))
	}
	for _, s := range secrets {
		if strings.Contains(md, s) {
			t.Errorf("report carries a secret or token (%d chars)", len(s))
		}
	}
	if strings.Contains(md, "eyJ") {
		t.Errorf("report carries something shaped like a JWT:\n%s", md)
	}
}

func TestCheckWithoutASigningKeySaysHowToAskTheRuleQuestion(t *testing.T) {
	f := newFixture(t, wetixtest.Options{})
	f.cfg.SigningKey = nil
	rep, _ := f.run(t)
	a := answer(t, rep, QCanonicalRule)
	if a.Verdict != Unanswered || !strings.Contains(a.Advice, "WETIX_SIGNING_KEY_FILE") {
		t.Errorf("without a key: %+v; want not answered, advice naming WETIX_SIGNING_KEY_FILE", a)
	}
}

func TestCheckWithAWrongSecretStopsAtTheFirstLineAndSaysWhy(t *testing.T) {
	f := newFixture(t, wetixtest.Options{})
	f.cfg.ClientSecret = "not-the-secret"
	rep, md := f.run(t)
	wantVerdict(t, rep, QGrantFields, Differs, "HTTP 401")
	for _, a := range rep.Answers[1:] {
		if a.Verdict != Unanswered {
			t.Errorf("%s answered %q after the first grant failed", a.ID, a.Verdict)
		}
	}
	if strings.Contains(md, "not-the-secret") {
		t.Error("report carries the (wrong) client secret it was given")
	}
}

func TestCheckRefusesProductionUnlessAskedByName(t *testing.T) {
	for _, u := range []string{"https://oauth.wetix.my", "https://oauth2.wetix.my/"} {
		_, err := Run(context.Background(), Config{OAuthURL: u, ClientID: "id", ClientSecret: "s"})
		if err == nil || !strings.Contains(err.Error(), "-allow-production") {
			t.Errorf("OAuth URL %s: err %v, want a refusal naming -allow-production", u, err)
		}
	}
	_, err := Run(context.Background(), Config{GraphQLURL: "https://open.wetix.my/graphql", ClientID: "id", ClientSecret: "s"})
	if err == nil || !strings.Contains(err.Error(), "production") {
		t.Errorf("production GraphQL URL: err %v, want a refusal", err)
	}
	_, err = Run(context.Background(), Config{ClientSecret: "s"})
	if err == nil || !strings.Contains(err.Error(), "WETIX_CLIENT_ID") {
		t.Errorf("no client ID: err %v, want one naming WETIX_CLIENT_ID", err)
	}
}

// requestIDStamper plays a WeTix that puts a fresh request ID (and a time)
// into every GraphQL error message, as many servers do. Two refusals for
// the same reason must still look alike to the rule question.
type requestIDStamper struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    int
}

func (s *requestIDStamper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(req)
	if err != nil || !strings.HasSuffix(req.URL.Path, "/graphql") {
		return resp, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out map[string]any
	if json.Unmarshal(body, &out) == nil {
		if errs, ok := out["errors"].([]any); ok {
			for _, e := range errs {
				if m, ok := e.(map[string]any); ok {
					s.mu.Lock()
					s.n++
					m["message"] = fmt.Sprintf("%v (request 7f3a%04d-9c1e-4b2d-a0f1-%012d at 2026-12-07T05:%02d:00Z)", m["message"], s.n, s.n*7919, s.n)
					s.mu.Unlock()
				}
			}
			body, _ = json.Marshal(out)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// wantRuleNamedDespite runs the check against a go-verifying and a
// literal-verifying emulator, each made to misbehave, and wants the rule
// row to name the emulator's rule.
func wantRuleNamedDespite(t *testing.T, misbehave func(t *testing.T, f *fixture)) {
	t.Helper()
	for _, rule := range []struct {
		emulator wetixtest.CanonicalRule
		verdict  Verdict
		finding  string
	}{
		{wetixtest.RuleGo, AsAssumed, "go (only the go signature"},
		{wetixtest.RuleLiteral, Differs, "literal (only the literal signature"},
	} {
		t.Run(string(rule.emulator), func(t *testing.T) {
			f := newFixture(t, wetixtest.Options{})
			if err := f.srv.SetCanonicalRule(rule.emulator); err != nil {
				t.Fatal(err)
			}
			misbehave(t, &f)
			rep, _ := f.run(t)
			wantVerdict(t, rep, QCanonicalRule, rule.verdict, rule.finding)
		})
	}
}

func TestCheckTellsTheRuleApartWhenRefusalsCarryRequestIDs(t *testing.T) {
	wantRuleNamedDespite(t, func(t *testing.T, f *fixture) {
		f.cfg.Transport = &requestIDStamper{next: f.rec}
	})
}

// guardGraphQL puts a WeTix-side guard in front of the emulator's GraphQL
// endpoint: when refuse says so, the signed mutation is refused before the
// signature is checked, as a WeTix with a replay guard (undocumented either
// way) would.
func guardGraphQL(t *testing.T, f *fixture, refuse func(sig, input map[string]any) bool) {
	t.Helper()
	target, _ := url.Parse(f.srv.URL())
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req struct {
			Variables struct {
				Input     map[string]any `json:"input"`
				Signature map[string]any `json:"signature"`
			} `json:"variables"`
		}
		if json.Unmarshal(body, &req) == nil && req.Variables.Signature != nil && refuse(req.Variables.Signature, req.Variables.Input) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"data":null,"errors":[{"message":"this request was already seen","extensions":{"code":"REPLAYED"}}]}`)
			return
		}
		proxy.ServeHTTP(w, r)
	})}
	ln := listen(t)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	f.cfg.GraphQLURL = "http://" + ln.Addr().String() + "/graphql"
}

// seenBefore is a replay guard keyed on what key picks from a signed
// mutation: true from the second time a key comes.
func seenBefore(key func(sig, input map[string]any) any) func(sig, input map[string]any) bool {
	var mu sync.Mutex
	seen := map[any]bool{}
	return func(sig, input map[string]any) bool {
		k := key(sig, input)
		mu.Lock()
		defer mu.Unlock()
		was := seen[k]
		seen[k] = true
		return was
	}
}

// A WeTix that refuses a second signature with the same timestamp, before
// checking it: if the rule question sent its signatures in the same second,
// only the first would ever be checked, and the answer would be whatever
// came first. Under either rule the check must still name the right one.
func TestCheckTellsTheRuleApartBehindATimestampReplayGuard(t *testing.T) {
	wantRuleNamedDespite(t, func(t *testing.T, f *fixture) {
		guardGraphQL(t, f, seenBefore(func(sig, _ map[string]any) any { return sig["timestamp"] }))
	})
}

// A WeTix that refuses the same order input twice, before checking the
// signature: only the first send is ever checked, so no rule can be told
// apart, and the check must say it could not answer rather than report the
// rule of whichever signature went first.
func TestCheckDoesNotGuessTheRuleBehindAnInputReplayGuard(t *testing.T) {
	for _, rule := range []wetixtest.CanonicalRule{wetixtest.RuleGo, wetixtest.RuleLiteral} {
		t.Run(string(rule), func(t *testing.T) {
			f := newFixture(t, wetixtest.Options{})
			if err := f.srv.SetCanonicalRule(rule); err != nil {
				t.Fatal(err)
			}
			guardGraphQL(t, &f, seenBefore(func(_, input map[string]any) any { return input["referenceId"] }))
			rep, _ := f.run(t)
			a := answer(t, rep, QCanonicalRule)
			if a.Verdict != Unanswered || !strings.Contains(a.Advice, "answered differently") {
				t.Errorf("behind an input replay guard: verdict %q, finding %q, advice %q; want not answered, advice saying two identical wrong signatures were answered differently", a.Verdict, a.Finding, a.Advice)
			}
		})
	}
}
