package client_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/client"
)

// The credentials every fuzzed request carries. Neither is JWT-shaped, so
// only the client's knowledge of them can keep them out of its errors.
const (
	fuzzClientSecret = "fz-Client-Secret-7Hq2Lm9Xw4"
	fuzzRefreshToken = "fz-Refresh-Token-Zp3Kd8Vn6Rt"
	// secretPiece: a message must not carry this many characters of a
	// secret the upstream echoed whole.
	secretPiece = 12
)

// jwtShaped is what the package promises never to echo (see doc.go): three
// base64url-ish segments of 8 or more characters.
var jwtShaped = regexp.MustCompile(`[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`)

// answerServer serves whatever answer the current fuzz input asks for. One
// server per process: a fuzz worker runs its inputs one at a time.
type answerServer struct {
	srv *httptest.Server

	mu          sync.Mutex // held for a whole fuzz iteration
	status      int
	contentType string
	body        []byte
	repeat      int           // write body this many times
	written     atomic.Int64  // bytes the last answer got onto the wire
	handled     chan struct{} // gets a value when the handler returns
}

var (
	answers     *answerServer
	answersOnce sync.Once
)

func answerServerFor(tb testing.TB) *answerServer {
	answersOnce.Do(func() {
		a := &answerServer{}
		a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
		answers = a
	})
	return answers
}

func (a *answerServer) serve(w http.ResponseWriter, r *http.Request) {
	defer func() { a.handled <- struct{}{} }()
	if r.Header.Get("Authorization") == "" {
		http.Error(w, "no credentials sent", http.StatusTeapot) // a client bug, not an answer
		return
	}
	if a.contentType != "" {
		w.Header().Set("Content-Type", a.contentType)
	}
	w.WriteHeader(a.status)
	for range a.repeat {
		n, err := w.Write(a.body)
		a.written.Add(int64(n))
		if err != nil {
			return
		}
	}
}

// call answers one grant with the given answer and returns what the client
// made of it.
func (a *answerServer) call(refresh bool, status int, contentType string, body []byte, repeat int) (*client.Pair, error) {
	a.status, a.contentType, a.body, a.repeat = status, contentType, body, repeat
	a.written.Store(0)
	a.handled = make(chan struct{}, 1)
	c := client.New(client.Config{BaseURL: a.srv.URL, ClientID: "fz-client", ClientSecret: fuzzClientSecret, Timeout: 10 * time.Second})
	if refresh {
		return c.Refresh(context.Background(), fuzzRefreshToken)
	}
	return c.ClientCredentials(context.Background())
}

// FuzzParseAnswer feeds arbitrary bytes to the client as a WeTix answer, with
// a 200 or an error status. The client must never panic, never return a Pair
// without an access token, and never put a JWT-shaped string, or a piece of a
// secret the upstream echoed, into an error message. An answer over
// client.MaxResponseBytes must be refused without reading it whole.
func FuzzParseAnswer(f *testing.F) {
	// More seeds, one per known shape of answer, are in
	// testdata/fuzz/FuzzParseAnswer.
	jwt := "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjQxMDI0NDQ4MDAsInN1YiI6InRlc3QifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	f.Add(uint16(200), "application/json", []byte(`{"access_token":"`+jwt+`","expires_in":5184000,"token_type":"Bearer"}`), false, false)
	f.Add(uint16(400), "application/json", []byte(`{"error":"invalid_grant","error_description":"refresh token is invalid or expired"}`), true, false)

	f.Fuzz(func(t *testing.T, status uint16, contentType string, body []byte, refresh, huge bool) {
		a := answerServerFor(t)
		a.mu.Lock()
		defer a.mu.Unlock()
		code := int(status)
		if code < 200 || code > 599 {
			code = 200 + code%400
		}
		if code == http.StatusNoContent || code == http.StatusNotModified || (code >= 300 && code < 400) {
			code = 200 // no body allowed, or a redirect to follow: not an answer
		}
		if strings.ContainsFunc(contentType, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }) {
			contentType = "" // not a header an HTTP server can send
		}
		repeat := 1
		if huge {
			if len(body) == 0 {
				body = []byte("x")
			}
			// Well past the cap and past any socket buffering, so that
			// reading it whole would show in the bytes written.
			repeat = (64<<20)/len(body) + 1
		}
		total := int64(len(body)) * int64(repeat)

		pair, err := a.call(refresh, code, contentType, body, repeat)

		if (pair == nil) == (err == nil) {
			t.Fatalf("pair=%v err=%v: want exactly one", pair, err)
		}
		if pair != nil {
			if pair.AccessToken == "" {
				t.Fatalf("a Pair without an access token")
			}
			if !pair.AccessExpiresAt.After(pair.IssuedAt) {
				t.Fatalf("a Pair whose access token is already expired: issued %s, expires %s", pair.IssuedAt, pair.AccessExpiresAt)
			}
			if code != http.StatusOK {
				t.Fatalf("a Pair from an HTTP %d answer", code)
			}
		}
		if err != nil {
			cerr, ok := client.AsError(err)
			if !ok {
				t.Fatalf("error is not a *client.Error: %T %v", err, err)
			}
			msg := err.Error()
			if m := jwtShaped.FindString(msg); m != "" {
				t.Fatalf("error message carries a JWT-shaped string %q: %s", m, msg)
			}
			sent := []string{fuzzClientSecret} // what this request carried
			if refresh {
				sent = append(sent, fuzzRefreshToken)
			}
			for _, secret := range sent {
				if !strings.Contains(string(body), secret) {
					continue
				}
				for i := 0; i+secretPiece <= len(secret); i++ {
					if strings.Contains(msg, secret[i:i+secretPiece]) {
						t.Fatalf("error message carries %q, part of a secret the upstream echoed: %s", secret[i:i+secretPiece], msg)
					}
				}
			}
			if total > client.MaxResponseBytes {
				if !strings.Contains(msg, "larger than") || cerr.Kind != client.KindTransient {
					t.Fatalf("an answer of %d bytes (cap %d) gave %v", total, client.MaxResponseBytes, err)
				}
			}
		}
		if total > client.MaxResponseBytes && err == nil {
			t.Fatalf("an answer of %d bytes (cap %d) was accepted", total, client.MaxResponseBytes)
		}
		// Wait for the handler, which stops at its first failed write, so
		// that it cannot spill into the next input.
		select {
		case <-a.handled:
		case <-time.After(10 * time.Second):
			t.Fatalf("the answer handler did not finish")
		}
		if huge {
			if w := a.written.Load(); w >= total {
				t.Fatalf("the client read all %d bytes of an oversized answer", w)
			}
		}
	})
}

// TestHugeAnswerNotReadWhole: an upstream that never stops sending is cut off
// at the cap, promptly, for both grants.
func TestHugeAnswerNotReadWhole(t *testing.T) {
	var written atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		chunk := []byte(strings.Repeat("a", 32<<10))
		w.Write([]byte(`{"access_token":"`))
		for {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
			if written.Load() > 1<<30 {
				return // 1 GiB: the client is reading it all
			}
		}
	}))
	defer srv.Close()
	c := client.New(client.Config{BaseURL: srv.URL, ClientID: "id", ClientSecret: fuzzClientSecret, Timeout: 30 * time.Second})
	for _, refresh := range []bool{false, true} {
		written.Store(0)
		start := time.Now()
		var err error
		if refresh {
			_, err = c.Refresh(context.Background(), fuzzRefreshToken)
		} else {
			_, err = c.ClientCredentials(context.Background())
		}
		cerr, ok := client.AsError(err)
		if !ok || !strings.Contains(err.Error(), "larger than") || cerr.Kind != client.KindTransient || !cerr.Sent {
			t.Fatalf("endless answer: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("refusing an endless answer took %s", d)
		}
		time.Sleep(50 * time.Millisecond)
		// Loopback socket buffers hold a few MiB; a client reading on would
		// pull 1 GiB.
		if w := written.Load(); w > 32<<20 {
			t.Errorf("the upstream got %d bytes out before the client hung up", w)
		}
		var nerr net.Error
		if errors.As(err, &nerr) {
			t.Errorf("raw network error leaked out: %v", err)
		}
	}
}
