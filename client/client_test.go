package client

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

const testSecret = "client-secret-value-xyz"

func newEmulator(t *testing.T) *wetixtest.Server {
	t.Helper()
	srv := wetixtest.New(wetixtest.Options{ClientID: "cid", ClientSecret: testSecret, AccessTTL: time.Hour, RefreshTTL: 2 * time.Hour})
	t.Cleanup(srv.Close)
	return srv
}

func newClient(url string, timeout time.Duration) *Client {
	return New(Config{BaseURL: url, ClientID: "cid", ClientSecret: testSecret, Timeout: timeout})
}

func TestBothGrants(t *testing.T) {
	t.Parallel()
	srv := newEmulator(t)
	c := newClient(srv.URL(), 5*time.Second)
	before := time.Now()
	p, err := c.ClientCredentials(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if p.Grant != GrantClientCredentials || !srv.IsAccessTokenValid(p.AccessToken) || p.TokenType != "Bearer" {
		t.Fatalf("pair: %+v", p)
	}
	if d := p.AccessExpiresAt.Sub(before); d < time.Hour-2*time.Second || d > time.Hour {
		t.Fatalf("access expiry %s from now", d)
	}
	if d := p.RefreshExpiresAt.Sub(before); d < 2*time.Hour-2*time.Second || d > 2*time.Hour {
		t.Fatalf("refresh expiry %s from now", d)
	}
	p2, err := c.Refresh(t.Context(), p.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if p2.Grant != GrantRefresh || p2.RefreshToken == p.RefreshToken || !srv.IsRefreshTokenLive(p2.RefreshToken) {
		t.Fatal("refresh did not rotate")
	}
	// Single-use: the old refresh token is now rejected, and classified so.
	_, err = c.Refresh(t.Context(), p.RefreshToken)
	if e, ok := AsError(err); !ok || e.Kind != KindRejected || e.Code != "invalid_grant" || !e.Sent {
		t.Fatalf("reused refresh token: %v", err)
	}
	if strings.Contains(err.Error(), p.RefreshToken) {
		t.Fatal("error echoes the refresh token")
	}
}

func TestClassification(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		grant  Grant
		fault  wetixtest.Fault
		kind   Kind
		msgHas string
	}{
		{"503 JSON", GrantClientCredentials, wetixtest.FaultStatus(503, ""), KindTransient, ""},
		{"502 HTML", GrantClientCredentials, wetixtest.FaultHTML(502), KindTransient, "HTML page: 502 Bad Gateway"},
		{"429", GrantClientCredentials, wetixtest.FaultRetryAfter(7), KindTransient, ""},
		{"invalid_client", GrantClientCredentials, wetixtest.FaultInvalidClient(), KindInvalidClient, "client authentication failed"},
		{"invalid_client on refresh", GrantRefresh, wetixtest.FaultInvalidClient(), KindInvalidClient, ""},
		{"bare 401 on token", GrantClientCredentials, wetixtest.FaultStatus(401, "nope"), KindInvalidClient, "nope"},
		{"bare 400 on refresh", GrantRefresh, wetixtest.FaultStatus(400, "bad"), KindRejected, "bad"},
		{"GraphQL 403", GrantClientCredentials, wetixtest.FaultGraphQLError(403, "not allowed"), KindPermanent, "not allowed"},
		{"404 plain text", GrantClientCredentials, wetixtest.FaultStatus(404, "404 page not found"), KindPermanent, "404 page not found"},
		{"malformed 200", GrantClientCredentials, wetixtest.Fault{Body: "{not json"}, KindTransient, "not the documented JSON"},
		{"200 without access_token", GrantClientCredentials, wetixtest.Fault{Body: `{"expires_in":10}`}, KindTransient, "no access_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newEmulator(t)
			rt := ""
			if tc.grant == GrantRefresh {
				p, err := newClient(srv.URL(), time.Second).ClientCredentials(t.Context())
				if err != nil {
					t.Fatal(err)
				}
				rt = p.RefreshToken
			}
			srv.Fault(tc.fault)
			c := newClient(srv.URL(), 2*time.Second)
			var err error
			if tc.grant == GrantRefresh {
				_, err = c.Refresh(t.Context(), rt)
			} else {
				_, err = c.ClientCredentials(t.Context())
			}
			e, ok := AsError(err)
			if !ok {
				t.Fatalf("not an *Error: %v", err)
			}
			if e.Kind != tc.kind || !e.Sent {
				t.Fatalf("kind %v sent %v, want %v sent: %v", e.Kind, e.Sent, tc.kind, err)
			}
			if !strings.Contains(err.Error(), tc.msgHas) {
				t.Fatalf("%q lacks %q", err, tc.msgHas)
			}
			if tc.name == "429" && e.RetryAfter != 7*time.Second {
				t.Fatalf("Retry-After parsed as %s", e.RetryAfter)
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Fatal("error leaks the client secret")
			}
		})
	}
}

func TestSentTellsWhetherWeTixMayHaveSeenTheRequest(t *testing.T) {
	t.Parallel()
	srv := newEmulator(t)
	srv.Fault(wetixtest.Fault{Drop: true})
	_, err := newClient(srv.URL(), time.Second).ClientCredentials(t.Context())
	if e, ok := AsError(err); !ok || !e.Sent || e.Kind != KindTransient {
		t.Fatalf("dropped connection: %v", err)
	}

	srv.ClearFaults()
	srv.Fault(wetixtest.Fault{Delay: 2 * time.Second})
	start := time.Now()
	_, err = newClient(srv.URL(), 200*time.Millisecond).ClientCredentials(t.Context())
	if e, ok := AsError(err); !ok || !e.Sent || !strings.Contains(e.Message, "timeout") || time.Since(start) > time.Second {
		t.Fatalf("timeout: %v after %s", err, time.Since(start))
	}

	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	_, err = newClient("http://"+addr, time.Second).ClientCredentials(t.Context())
	if e, ok := AsError(err); !ok || e.Sent || e.Kind != KindTransient {
		t.Fatalf("refused connection: %v", err)
	}
}

func TestContextCancellation(t *testing.T) {
	t.Parallel()
	srv := newEmulator(t)
	srv.Fault(wetixtest.Fault{Delay: 5 * time.Second})
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := newClient(srv.URL(), 0).ClientCredentials(ctx)
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("cancel did not stop the call: %v after %s", err, time.Since(start))
	}
}

func TestRequestShape(t *testing.T) {
	t.Parallel()
	var got *http.Request
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		b := make([]byte, 512)
		n, _ := r.Body.Read(b)
		body = string(b[:n])
		w.Write([]byte(`{"access_token":"a.b.c","expires_in":60,"refresh_token":"r","refresh_token_expires_in":120,"token_type":"Bearer"}`))
	}))
	defer srv.Close()
	if _, err := newClient(srv.URL+"/", time.Second).Refresh(t.Context(), "rt-value"); err != nil {
		t.Fatal(err)
	}
	id, secret, ok := got.BasicAuth()
	if got.Method != http.MethodPost || got.URL.Path != "/auth/refresh" || !ok || id != "cid" || secret != testSecret ||
		got.Header.Get("Content-Type") != "application/json" ||
		body != `{"grant_type":"refresh_token","refresh_token":"rt-value"}` {
		t.Fatalf("request: %s %s auth=%v ct=%q body=%s", got.Method, got.URL.Path, ok, got.Header.Get("Content-Type"), body)
	}
}

func TestOversizedAnswerRefused(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		chunk := []byte(strings.Repeat("x", 4096))
		for i := 0; i < 1024; i++ { // 4 MiB, far past the cap
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	_, err := newClient(srv.URL, 5*time.Second).ClientCredentials(t.Context())
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized answer: %v", err)
	}
}

func TestRedaction(t *testing.T) {
	t.Parallel()
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
	got := redact("bad token "+jwt+" for secret-abc", []string{"secret-abc"})
	if strings.Contains(got, jwt) || strings.Contains(got, "secret-abc") {
		t.Fatalf("not redacted: %s", got)
	}
}

func TestRetryAfterForms(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if d := parseRetryAfter("3", now); d != 3*time.Second {
		t.Fatal(d)
	}
	if d := parseRetryAfter(now.Add(10*time.Second).Format(http.TimeFormat), now); d != 10*time.Second {
		t.Fatal(d)
	}
	if d := parseRetryAfter("soon", now); d != 0 {
		t.Fatal(d)
	}
}

func TestExpiresInMissingFallsBackToJWTExp(t *testing.T) {
	t.Parallel()
	srv := newEmulator(t)
	srv.Fault(wetixtest.Fault{OmitExpiresIn: true})
	p, err := newClient(srv.URL(), time.Second).ClientCredentials(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(p.AccessExpiresAt); d < time.Hour-2*time.Second || d > time.Hour+time.Second {
		t.Fatalf("expiry from exp claim: %s", d)
	}
}

func TestEchoedAuthorizationHeaderIsRedacted(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte("bad request, you sent: " + r.Header.Get("Authorization")))
	}))
	defer srv.Close()
	_, err := newClient(srv.URL, time.Second).ClientCredentials(t.Context())
	basic := "Y2lkOmNsaWVudC1zZWNyZXQtdmFsdWUteHl6" // base64("cid:" + testSecret)
	if err == nil || strings.Contains(err.Error(), basic) || !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("echoed Authorization header: %v", err)
	}
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	t.Parallel()
	var leaked atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked.Store(true)
	}))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/steal", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	_, err := newClient(srv.URL, time.Second).Refresh(t.Context(), "rt-value")
	if e, ok := AsError(err); !ok || e.Kind != KindPermanent || e.Status != http.StatusTemporaryRedirect {
		t.Fatalf("redirect: %v", err)
	}
	if leaked.Load() {
		t.Fatal("the client followed a redirect with the credentials")
	}
}
