package wetixtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// docsClientID and docsClientKey come from the provider's examples: the
// docs' access token carries docsClientKey for the docs' client ID.
const (
	docsClientID  = "1612417576451877743"
	docsClientKey = "EgtPQXV0aENsaWVudBjv1orQ4qedsBY"
)

// docsIat is the issue time of the docs' example tokens.
var docsIat = time.Unix(1634699720, 0)

// start runs a server and a client with its own transport, both torn down
// with the test so leaked connections or goroutines show up under -race.
func start(t *testing.T, opts Options) (*Server, *http.Client) {
	t.Helper()
	s := New(opts)
	tr := &http.Transport{}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		s.Close()
	})
	return s, &http.Client{Transport: tr}
}

// request describes one call; zero fields mean a well-formed request.
type request struct {
	method      string
	path        string
	body        string
	contentType string
	user, pass  string
	noAuth      bool
}

func ccRequest() request {
	return request{path: "/auth/token", body: `{"grant_type":"client_credentials"}`}
}

func refreshRequest(tok string) request {
	return request{path: "/auth/refresh", body: `{"grant_type":"refresh_token","refresh_token":"` + tok + `"}`}
}

func send(c *http.Client, s *Server, r request) (*http.Response, []byte, error) {
	if r.method == "" {
		r.method = http.MethodPost
	}
	if r.contentType == "" {
		r.contentType = "application/json"
	}
	if r.user == "" && r.pass == "" { // the server's current credentials
		s.mu.Lock()
		r.user, r.pass = s.opts.ClientID, s.secret
		s.mu.Unlock()
	}
	req, err := http.NewRequest(r.method, s.URL()+r.path, strings.NewReader(r.body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", r.contentType)
	if !r.noAuth {
		req.SetBasicAuth(r.user, r.pass)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// answer is a token or error body; pointers tell "absent" from "zero".
type answer struct {
	AccessToken           string  `json:"access_token"`
	ExpiresIn             *int64  `json:"expires_in"`
	RefreshToken          *string `json:"refresh_token"`
	RefreshTokenExpiresIn *int64  `json:"refresh_token_expires_in"`
	TokenType             string  `json:"token_type"`
	Error                 string  `json:"error"`
	ErrorDescription      string  `json:"error_description"`
}

func call(t *testing.T, c *http.Client, s *Server, r request) (int, answer, []byte) {
	t.Helper()
	resp, body, err := send(c, s, r)
	if err != nil {
		t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	var a answer
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatalf("%s: bad JSON %q: %v", r.path, body, err)
		}
	}
	return resp.StatusCode, a, body
}

func mustIssue(t *testing.T, c *http.Client, s *Server, r request) answer {
	t.Helper()
	status, a, body := call(t, c, s, r)
	if status != http.StatusOK || a.RefreshToken == nil {
		t.Fatalf("%s: got %d %s, want 200 with a pair", r.path, status, body)
	}
	return a
}

func decodeClaims(t *testing.T, tok string) (header string, c claims) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts, want 3", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return parts[0], c
}

func TestGrantsIssuePairs(t *testing.T) {
	t.Parallel()
	s, c := start(t, Options{})
	seeded := s.SeedRefreshToken()
	for _, tc := range []struct {
		grant Grant
		req   request
	}{
		{GrantClientCredentials, ccRequest()},
		{GrantRefresh, refreshRequest(seeded)},
	} {
		t.Run(string(tc.grant), func(t *testing.T) {
			resp, body, err := send(c, s, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			var fields map[string]any
			if err := json.Unmarshal(body, &fields); err != nil {
				t.Fatal(err)
			}
			if len(fields) != 5 {
				t.Errorf("answer has fields %v, want exactly the documented five", fields)
			}
			var a answer
			json.Unmarshal(body, &a)
			if a.TokenType != "Bearer" || *a.ExpiresIn != 5184000 || *a.RefreshTokenExpiresIn != 31536000 {
				t.Errorf("got token_type %q expires_in %d refresh_token_expires_in %d, want the docs' Bearer/5184000/31536000",
					a.TokenType, *a.ExpiresIn, *a.RefreshTokenExpiresIn)
			}
			if !s.IsAccessTokenValid(a.AccessToken) || !s.IsRefreshTokenLive(*a.RefreshToken) {
				t.Error("issued tokens are not valid at the server")
			}
			if s.IsAccessTokenValid(*a.RefreshToken) || s.IsRefreshTokenLive(a.AccessToken) {
				t.Error("token types are interchangeable")
			}
			last := s.LastIssued()
			if last.Grant != tc.grant || last.AccessToken != a.AccessToken || last.RefreshToken != *a.RefreshToken {
				t.Errorf("LastIssued = %+v, does not match the answer", last)
			}
			if s.Calls(tc.grant) != 1 || s.Successes(tc.grant) != 1 {
				t.Errorf("calls %d successes %d, want 1 and 1", s.Calls(tc.grant), s.Successes(tc.grant))
			}
		})
	}
}

func TestTokenClaims(t *testing.T) {
	t.Parallel()
	clk := NewClock(docsIat)
	s, c := start(t, Options{ClientID: docsClientID, AccessTTL: 90 * time.Second, RefreshTTL: 300 * time.Second, Now: clk.Now})
	a := mustIssue(t, c, s, ccRequest())
	b := mustIssue(t, c, s, ccRequest()) // same second on the frozen clock
	iat := clk.Now().Unix()
	for _, tc := range []struct {
		name, tok, tokenType string
		ttl                  int64
	}{
		{"access", a.AccessToken, "ACCESS_TOKEN", 90},
		{"refresh", *a.RefreshToken, "REFRESH_TOKEN", 300},
	} {
		t.Run(tc.name, func(t *testing.T) {
			header, cl := decodeClaims(t, tc.tok)
			if header != "eyJhbGciOiJIUzI1NiJ9" {
				t.Errorf("header %q, want the docs' {\"alg\":\"HS256\"}", header)
			}
			want := claims{
				Aud: audience, ClientKey: docsClientKey, Iat: iat, Nbf: iat, Exp: iat + tc.ttl,
				Iss: s.URL(), JTI: cl.JTI, TokenType: tc.tokenType,
			}
			if fmt.Sprint(cl) != fmt.Sprint(want) || cl.JTI == "" {
				t.Errorf("claims\n got %+v\nwant %+v", cl, want)
			}
		})
	}
	if *a.ExpiresIn != 90 || *a.RefreshTokenExpiresIn != 300 {
		t.Errorf("expires_in %d / %d, want 90 / 300", *a.ExpiresIn, *a.RefreshTokenExpiresIn)
	}
	if last := s.LastIssued(); !last.AccessExpiresAt.Equal(time.Unix(iat+90, 0)) || !last.RefreshExpiresAt.Equal(time.Unix(iat+300, 0)) {
		t.Errorf("LastIssued expiries %v / %v", last.AccessExpiresAt, last.RefreshExpiresAt)
	}
	if a.AccessToken == b.AccessToken || *a.RefreshToken == *b.RefreshToken {
		t.Error("two pairs minted in the same second are identical")
	}
}

func TestIssuerAndTTLRounding(t *testing.T) {
	t.Parallel()
	s, c := start(t, Options{Issuer: "http://local-oauth.wetix.my:5004", ClientID: "not-numeric", AccessTTL: 1500 * time.Millisecond, RefreshTTL: 300 * time.Millisecond})
	a := mustIssue(t, c, s, ccRequest())
	if *a.ExpiresIn != 1 || *a.RefreshTokenExpiresIn != 1 {
		t.Errorf("expires_in %d / %d, want whole seconds and at least 1", *a.ExpiresIn, *a.RefreshTokenExpiresIn)
	}
	_, cl := decodeClaims(t, a.AccessToken)
	if cl.Iss != "http://local-oauth.wetix.my:5004" || cl.ClientKey != clientKey("not-numeric") || cl.ClientKey == clientKey("other") {
		t.Errorf("claims %+v", cl)
	}
}

func TestRequestErrors(t *testing.T) {
	t.Parallel()
	s, c := start(t, Options{})
	access := mustIssue(t, c, s, ccRequest()).AccessToken
	s.ResetCounts()
	other := New(Options{})
	foreign := other.SeedRefreshToken()
	other.Close()
	for _, tc := range []struct {
		name   string
		req    request
		status int
		code   string
	}{
		{"no auth", request{path: "/auth/token", body: `{"grant_type":"client_credentials"}`, noAuth: true}, 401, "invalid_client"},
		{"wrong secret", request{path: "/auth/token", body: `{"grant_type":"client_credentials"}`, user: defaultClientID, pass: "nope"}, 401, "invalid_client"},
		{"wrong id", request{path: "/auth/refresh", body: `{}`, user: "someone", pass: defaultClientSecret}, 401, "invalid_client"},
		{"form body", request{path: "/auth/token", body: "grant_type=client_credentials", contentType: "application/x-www-form-urlencoded"}, 400, "invalid_request"},
		{"bad json", request{path: "/auth/token", body: `{"grant_type":`}, 400, "invalid_request"},
		{"no grant", request{path: "/auth/token", body: `{}`}, 400, "invalid_request"},
		{"wrong grant", request{path: "/auth/token", body: `{"grant_type":"refresh_token"}`}, 400, "unsupported_grant_type"},
		{"password grant", request{path: "/auth/refresh", body: `{"grant_type":"password"}`}, 400, "unsupported_grant_type"},
		{"no refresh token", request{path: "/auth/refresh", body: `{"grant_type":"refresh_token"}`}, 400, "invalid_request"},
		{"garbage refresh token", refreshRequest("not.a.jwt"), 400, "invalid_grant"},
		{"access token as refresh", refreshRequest(access), 400, "invalid_grant"},
		{"other server's token", refreshRequest(foreign), 400, "invalid_grant"},
		{"GET", request{method: http.MethodGet, path: "/auth/token"}, 405, "invalid_request"},
		{"unknown path", request{path: "/oauth/token"}, 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, a, body := call(t, c, s, tc.req)
			if status != tc.status || a.Error != tc.code || a.ErrorDescription == "" {
				t.Errorf("got %d %s, want %d %s", status, body, tc.status, tc.code)
			}
			for _, secret := range []string{defaultClientSecret, access, foreign, "not.a.jwt", "nope"} {
				if strings.Contains(string(body), secret) {
					t.Errorf("error body echoes a secret or token: %s", body)
				}
			}
		})
	}
	if got := s.Calls(GrantClientCredentials) + s.Calls(GrantRefresh); got != 13 {
		t.Errorf("calls %d, want 13 (every request to a token endpoint)", got)
	}
	if s.Successes(GrantClientCredentials)+s.Successes(GrantRefresh) != 0 {
		t.Error("a failed request counted as a success")
	}
}

func TestRefreshSingleUse(t *testing.T) {
	t.Parallel()
	s, c := start(t, Options{})
	first := s.SeedRefreshToken()
	next := *mustIssue(t, c, s, refreshRequest(first)).RefreshToken
	if s.IsRefreshTokenLive(first) {
		t.Error("a used refresh token is still live")
	}
	if status, a, _ := call(t, c, s, refreshRequest(first)); status != 400 || a.Error != "invalid_grant" {
		t.Errorf("reuse: got %d %q, want 400 invalid_grant", status, a.Error)
	}
	mustIssue(t, c, s, refreshRequest(next))
}

func TestRefreshReuseAllowed(t *testing.T) {
	t.Parallel()
	s, c := start(t, Options{AllowRefreshReuse: true})
	tok := s.SeedRefreshToken()
	for range 3 {
		mustIssue(t, c, s, refreshRequest(tok))
	}
	if !s.IsRefreshTokenLive(tok) || s.Successes(GrantRefresh) != 3 {
		t.Errorf("live %v successes %d", s.IsRefreshTokenLive(tok), s.Successes(GrantRefresh))
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	clk := NewClock(docsIat)
	s, c := start(t, Options{AccessTTL: 10 * time.Second, RefreshTTL: 60 * time.Second, Now: clk.Now})
	a := mustIssue(t, c, s, ccRequest())
	clk.Advance(9 * time.Second)
	if !s.IsAccessTokenValid(a.AccessToken) {
		t.Error("access token invalid before exp")
	}
	clk.Advance(time.Second)
	if s.IsAccessTokenValid(a.AccessToken) {
		t.Error("access token valid at exp")
	}
	clk.Advance(50 * time.Second)
	if s.IsRefreshTokenLive(*a.RefreshToken) {
		t.Error("refresh token live at exp")
	}
	if status, b, _ := call(t, c, s, refreshRequest(*a.RefreshToken)); status != 400 || b.Error != "invalid_grant" {
		t.Errorf("expired refresh: got %d %q, want 400 invalid_grant", status, b.Error)
	}
}

func TestRevokeAndRotateSecret(t *testing.T) {
	t.Parallel()
	s, c := start(t, Options{})
	tok := s.SeedRefreshToken()
	s.RevokeAllRefreshTokens()
	if status, a, _ := call(t, c, s, refreshRequest(tok)); status != 400 || a.Error != "invalid_grant" {
		t.Errorf("revoked refresh: got %d %q", status, a.Error)
	}
	s.SetClientSecret("rotated")
	old := ccRequest()
	old.user, old.pass = defaultClientID, defaultClientSecret
	if status, a, _ := call(t, c, s, old); status != 401 || a.Error != "invalid_client" {
		t.Errorf("old secret: got %d %q", status, a.Error)
	}
	mustIssue(t, c, s, ccRequest()) // send uses the current secret
}

// TestConcurrentCounters checks that counting and fault consumption are
// atomic: 50 requests at once, 10 of them faulted.
func TestConcurrentCounters(t *testing.T) {
	t.Parallel()
	s, c := start(t, Options{})
	seeds := make([]string, 25)
	for i := range seeds {
		seeds[i] = s.SeedRefreshToken()
	}
	s.Fault(FaultStatus(503, "").For(GrantClientCredentials).Limit(10))
	var wg sync.WaitGroup
	statuses := make(chan int, 50)
	for i := range 50 {
		r := ccRequest()
		if i%2 == 1 {
			r = refreshRequest(seeds[i/2])
		}
		wg.Go(func() {
			resp, _, err := send(c, s, r)
			if err != nil {
				t.Error(err)
				return
			}
			statuses <- resp.StatusCode
		})
	}
	wg.Wait()
	close(statuses)
	n503 := 0
	for st := range statuses {
		if st == 503 {
			n503++
		}
	}
	if n503 != 10 {
		t.Errorf("%d answers were 503, want 10", n503)
	}
	for g, want := range map[Grant][2]int{GrantClientCredentials: {25, 15}, GrantRefresh: {25, 25}} {
		if s.Calls(g) != want[0] || s.Successes(g) != want[1] {
			t.Errorf("%s: calls %d successes %d, want %d %d", g, s.Calls(g), s.Successes(g), want[0], want[1])
		}
	}
}

func TestConcurrentReuseHasOneWinner(t *testing.T) {
	t.Parallel()
	s, c := start(t, Options{})
	tok := s.SeedRefreshToken()
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[int]int{}
	for range 50 {
		wg.Go(func() {
			resp, _, err := send(c, s, refreshRequest(tok))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			got[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if got[200] != 1 || got[400] != 49 || s.Calls(GrantRefresh) != 50 || s.Successes(GrantRefresh) != 1 {
		t.Errorf("statuses %v calls %d successes %d, want one 200 and 49 400s", got, s.Calls(GrantRefresh), s.Successes(GrantRefresh))
	}
}

func TestOnRequestLogsNoSecrets(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var infos []RequestInfo
	s, c := start(t, Options{OnRequest: func(ri RequestInfo) {
		mu.Lock()
		defer mu.Unlock()
		infos = append(infos, ri)
	}})
	tok := s.SeedRefreshToken()
	a := mustIssue(t, c, s, refreshRequest(tok))
	s.Fault(Fault{Drop: true, Times: 1})
	send(c, s, ccRequest())
	call(t, c, s, request{path: "/nowhere"})
	s.Close() // waits for handlers, so every OnRequest has run
	mu.Lock()
	defer mu.Unlock()
	slices.SortFunc(infos, func(a, b RequestInfo) int { return strings.Compare(a.Path, b.Path) })
	logged := fmt.Sprintf("%+v", infos)
	for _, secret := range []string{defaultClientSecret, tok, a.AccessToken, *a.RefreshToken} {
		if strings.Contains(logged, secret) {
			t.Fatalf("RequestInfo leaks a secret: %s", logged)
		}
	}
	// The User-Agent is Go's own here: these requests come from net/http.
	const ua = "Go-http-client/1.1"
	want := []RequestInfo{
		{Method: "POST", Path: "/auth/refresh", Grant: GrantRefresh, Status: 200, UserAgent: ua},
		{Method: "POST", Path: "/auth/token", Grant: GrantClientCredentials, Status: 0, Fault: "drop", UserAgent: ua},
		{Method: "POST", Path: "/nowhere", Status: 404, UserAgent: ua},
	}
	if len(infos) != len(want) {
		t.Fatalf("got %d infos, want %d: %s", len(infos), len(want), logged)
	}
	for i := range want {
		infos[i].Duration = 0
		if infos[i] != want[i] {
			t.Errorf("info %d = %+v, want %+v", i, infos[i], want[i])
		}
	}
}

func TestCloseIsPromptAndFinal(t *testing.T) {
	t.Parallel()
	s := New(Options{})
	s.Fault(Fault{Delay: time.Hour})
	c := &http.Client{}
	errc := make(chan error, 1)
	go func() {
		_, _, err := send(c, s, ccRequest())
		errc <- err
	}()
	for s.Calls(GrantClientCredentials) == 0 {
		time.Sleep(time.Millisecond)
	}
	begin := time.Now()
	s.Close()
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Close took %v with a delayed request in flight", d)
	}
	if err := <-errc; err == nil {
		t.Error("delayed request succeeded across Close")
	}
	s.Close() // idempotent
	if _, _, err := send(c, s, ccRequest()); err == nil {
		t.Error("request after Close succeeded")
	}
}

// TestMountConfigAndTotalCalls: MountConfig carries the credentials the
// emulator accepts now (a mount configured from it gets tokens), and
// TotalCalls counts every request to either token endpoint, refused ones too.
func TestMountConfigAndTotalCalls(t *testing.T) {
	t.Parallel()
	s, c := start(t, Options{ClientID: "cid", ClientSecret: "first"})
	s.SetClientSecret("second")
	cfg := s.MountConfig(map[string]interface{}{"ttl": "5s"})
	if cfg["client_id"] != "cid" || cfg["client_secret"] != "second" || cfg["base_url"] != s.URL() || cfg["ttl"] != "5s" || len(cfg) != 4 {
		t.Fatalf("MountConfig = %v", cfg)
	}
	if over := s.MountConfig(map[string]interface{}{"client_id": "other"}); over["client_id"] != "other" {
		t.Errorf("extra did not override client_id: %v", over)
	}
	r := ccRequest()
	r.user, r.pass = cfg["client_id"].(string), cfg["client_secret"].(string)
	mustIssue(t, c, s, r)
	if status, _, _ := call(t, c, s, refreshRequest("not-a-token")); status != http.StatusBadRequest {
		t.Fatalf("refresh with a bogus token: %d, want 400", status)
	}
	if n := s.TotalCalls(); n != 2 || n != s.Calls(GrantClientCredentials)+s.Calls(GrantRefresh) {
		t.Errorf("TotalCalls = %d after one accepted and one refused call, want 2", n)
	}
}

// TestClock: Advance moves Now, and only Advance does.
func TestClock(t *testing.T) {
	t.Parallel()
	clk := NewClock(docsIat)
	if !clk.Now().Equal(docsIat) || !clk.Now().Equal(clk.Now()) {
		t.Fatalf("a new clock reads %v, want %v and still", clk.Now(), docsIat)
	}
	clk.Advance(90 * time.Second)
	if got := clk.Now().Sub(docsIat); got != 90*time.Second {
		t.Errorf("after Advance(90s) the clock moved %v", got)
	}
}
