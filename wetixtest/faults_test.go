package wetixtest

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// outcome is what a client saw for one faulted request.
type outcome struct {
	resp *http.Response
	body []byte
	err  error
}

func (o outcome) answer(t *testing.T) answer {
	t.Helper()
	if o.err != nil {
		t.Fatalf("request failed: %v", o.err)
	}
	var a answer
	if err := json.Unmarshal(o.body, &a); err != nil {
		t.Fatalf("body %q is not JSON: %v", o.body, err)
	}
	return a
}

func wantStatus(t *testing.T, o outcome, status int) {
	t.Helper()
	if o.err != nil {
		t.Fatalf("request failed: %v", o.err)
	}
	if o.resp.StatusCode != status {
		t.Fatalf("status %d (%s), want %d", o.resp.StatusCode, o.body, status)
	}
}

// isConnectionLost accepts what a dropped connection looks like to a Go
// client: EOF before any response, or a reset.
func isConnectionLost(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

func TestFaults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		fault Fault
		grant Grant
		// check runs on what the client saw; seed is the refresh token sent
		// (refresh grant only).
		check func(t *testing.T, s *Server, o outcome, seed string)
	}{
		{"generic status", FaultStatus(503, ""), GrantClientCredentials, func(t *testing.T, s *Server, o outcome, _ string) {
			wantStatus(t, o, 503)
			if a := o.answer(t); a.Error != "service_unavailable" {
				t.Errorf("error %q", a.Error)
			}
			wantCounts(t, s, GrantClientCredentials, 1, 0)
		}},
		{"status with body", FaultStatus(500, "oops"), GrantClientCredentials, func(t *testing.T, s *Server, o outcome, _ string) {
			wantStatus(t, o, 500)
			if string(o.body) != "oops" {
				t.Errorf("body %q", o.body)
			}
		}},
		{"malformed JSON with 200", Fault{Body: `{"access_token":`}, GrantClientCredentials, func(t *testing.T, s *Server, o outcome, _ string) {
			wantStatus(t, o, 200)
			if string(o.body) != `{"access_token":` || o.resp.Header.Get("Content-Type") != "application/json" {
				t.Errorf("got %q %q", o.resp.Header.Get("Content-Type"), o.body)
			}
			wantCounts(t, s, GrantClientCredentials, 1, 0)
		}},
		{"HTML page", FaultHTML(502), GrantRefresh, func(t *testing.T, s *Server, o outcome, seed string) {
			wantStatus(t, o, 502)
			if o.resp.Header.Get("Content-Type") != "text/html" || !strings.HasPrefix(string(o.body), "<html>") {
				t.Errorf("got %q %q", o.resp.Header.Get("Content-Type"), o.body)
			}
			if !s.IsRefreshTokenLive(seed) {
				t.Error("an unprocessed request spent the refresh token")
			}
		}},
		{"retry after", FaultRetryAfter(7), GrantClientCredentials, func(t *testing.T, s *Server, o outcome, _ string) {
			wantStatus(t, o, 429)
			if o.resp.Header.Get("Retry-After") != "7" {
				t.Errorf("Retry-After %q", o.resp.Header.Get("Retry-After"))
			}
		}},
		{"invalid grant", FaultInvalidGrant(), GrantRefresh, func(t *testing.T, s *Server, o outcome, _ string) {
			wantStatus(t, o, 400)
			if a := o.answer(t); a.Error != "invalid_grant" {
				t.Errorf("error %q", a.Error)
			}
		}},
		{"invalid client", FaultInvalidClient(), GrantClientCredentials, func(t *testing.T, s *Server, o outcome, _ string) {
			wantStatus(t, o, 401)
			if a := o.answer(t); a.Error != "invalid_client" {
				t.Errorf("error %q", a.Error)
			}
		}},
		{"GraphQL error", FaultGraphQLError(500, `internal "error"`), GrantClientCredentials, func(t *testing.T, s *Server, o outcome, _ string) {
			wantStatus(t, o, 500)
			var g struct{ Errors []struct{ Message string } }
			if err := json.Unmarshal(o.body, &g); err != nil || len(g.Errors) != 1 || g.Errors[0].Message != `internal "error"` {
				t.Errorf("body %q", o.body)
			}
		}},
		{"drop", Fault{Drop: true}, GrantRefresh, func(t *testing.T, s *Server, o outcome, seed string) {
			if !isConnectionLost(o.err) {
				t.Fatalf("err %v, want EOF or reset", o.err)
			}
			wantCounts(t, s, GrantRefresh, 1, 0)
			if !s.IsRefreshTokenLive(seed) {
				t.Error("a request dropped before processing spent the refresh token")
			}
		}},
		{"drop after processing", Fault{Drop: true, Process: true}, GrantRefresh, func(t *testing.T, s *Server, o outcome, seed string) {
			if !isConnectionLost(o.err) {
				t.Fatalf("err %v, want EOF or reset", o.err)
			}
			wantCounts(t, s, GrantRefresh, 1, 1)
			if s.IsRefreshTokenLive(seed) {
				t.Error("the refresh token survived a processed-then-dropped refresh")
			}
			if !s.IsRefreshTokenLive(s.LastIssued().RefreshToken) {
				t.Error("the lost answer's refresh token is not live")
			}
		}},
		{"truncate", Fault{Truncate: true}, GrantRefresh, func(t *testing.T, s *Server, o outcome, seed string) {
			if o.resp == nil || o.resp.StatusCode != 200 || !errors.Is(o.err, io.ErrUnexpectedEOF) {
				t.Fatalf("resp %v err %v, want 200 headers then unexpected EOF", o.resp, o.err)
			}
			wantCounts(t, s, GrantRefresh, 1, 0)
			if !s.IsRefreshTokenLive(seed) {
				t.Error("a truncated unprocessed answer spent the refresh token")
			}
		}},
		{"truncate after processing", Fault{Truncate: true, Process: true}, GrantRefresh, func(t *testing.T, s *Server, o outcome, seed string) {
			if !errors.Is(o.err, io.ErrUnexpectedEOF) {
				t.Fatalf("err %v, want unexpected EOF", o.err)
			}
			wantCounts(t, s, GrantRefresh, 1, 1)
			if s.IsRefreshTokenLive(seed) {
				t.Error("the refresh token survived a processed refresh")
			}
		}},
		{"status after processing", Fault{Status: 500, Process: true}, GrantRefresh, func(t *testing.T, s *Server, o outcome, seed string) {
			wantStatus(t, o, 500)
			wantCounts(t, s, GrantRefresh, 1, 1)
			if s.IsRefreshTokenLive(seed) {
				t.Error("the refresh token survived a processed refresh")
			}
		}},
		{"short delay", Fault{Delay: 50 * time.Millisecond}, GrantClientCredentials, func(t *testing.T, s *Server, o outcome, _ string) {
			wantStatus(t, o, 200)
			wantCounts(t, s, GrantClientCredentials, 1, 1)
		}},
		{"omit refresh token", Fault{OmitRefreshToken: true}, GrantRefresh, func(t *testing.T, s *Server, o outcome, seed string) {
			wantStatus(t, o, 200)
			a := o.answer(t)
			if a.RefreshToken != nil || a.RefreshTokenExpiresIn != nil || a.ExpiresIn == nil || !s.IsAccessTokenValid(a.AccessToken) {
				t.Errorf("body %s", o.body)
			}
			if !s.IsRefreshTokenLive(seed) {
				t.Error("a refresh that sent no new refresh token spent the old one")
			}
			if s.LastIssued().RefreshToken != "" {
				t.Error("LastIssued has a refresh token that was never sent")
			}
		}},
		{"omit expires_in", Fault{OmitExpiresIn: true}, GrantClientCredentials, func(t *testing.T, s *Server, o outcome, _ string) {
			wantStatus(t, o, 200)
			if a := o.answer(t); a.ExpiresIn != nil || a.RefreshToken == nil {
				t.Errorf("body %s", o.body)
			}
		}},
		{"extra header only", Fault{Header: http.Header{"X-Test": {"1"}}}, GrantClientCredentials, func(t *testing.T, s *Server, o outcome, _ string) {
			wantStatus(t, o, 200)
			if o.resp.Header.Get("X-Test") != "1" || o.answer(t).RefreshToken == nil {
				t.Errorf("header %v body %s", o.resp.Header, o.body)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, c := start(t, Options{})
			seed := s.SeedRefreshToken()
			f := tc.fault
			f.Times = 1
			s.Fault(f)
			req := ccRequest()
			if tc.grant == GrantRefresh {
				req = refreshRequest(seed)
			}
			resp, body, err := send(c, s, req)
			tc.check(t, s, outcome{resp, body, err}, seed)
			// Times: 1 means the next request is served normally.
			if tc.grant == GrantRefresh {
				req = refreshRequest(s.SeedRefreshToken())
			}
			mustIssue(t, c, s, req)
		})
	}
}

func wantCounts(t *testing.T, s *Server, g Grant, calls, successes int) {
	t.Helper()
	if s.Calls(g) != calls || s.Successes(g) != successes {
		t.Errorf("%s: calls %d successes %d, want %d %d", g, s.Calls(g), s.Successes(g), calls, successes)
	}
}

// waitFor polls because the server notices a client timeout on its own
// schedule; the condition is about server state, not the client's view.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDelayPastClientTimeout(t *testing.T) {
	t.Parallel()
	for _, process := range []bool{false, true} {
		t.Run(map[bool]string{false: "unprocessed", true: "processed"}[process], func(t *testing.T) {
			s, c := start(t, Options{})
			c.Timeout = 100 * time.Millisecond
			seed := s.SeedRefreshToken()
			s.Fault(Fault{Grant: GrantRefresh, Times: 1, Delay: time.Hour, Process: process})
			_, _, err := send(c, s, refreshRequest(seed))
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("err %v, want a client timeout", err)
			}
			wantCounts(t, s, GrantRefresh, 1, map[bool]int{false: 0, true: 1}[process])
			if s.IsRefreshTokenLive(seed) == process {
				t.Errorf("refresh token live = %v after a %s request that timed out", !process, t.Name())
			}
			c.Timeout = 0
			// The abandoned handler must end, not sleep for an hour.
			waitFor(t, "the delayed handler to notice the client left", func() bool {
				_, _, err := send(c, s, ccRequest())
				return err == nil && s.Successes(GrantClientCredentials) > 0
			})
		})
	}
}

func TestFaultQueue(t *testing.T) {
	t.Parallel()
	s, c := start(t, Options{})
	s.Fault(FaultStatus(500, "first").Limit(1))
	s.Fault(FaultStatus(502, "refresh only").For(GrantRefresh).Limit(1))
	s.Fault(FaultStatus(503, "second").Limit(1))
	for _, want := range []int{500, 503, 200} {
		if resp, body, err := send(c, s, ccRequest()); err != nil || resp.StatusCode != want {
			t.Errorf("got %v %s, want %d", err, body, want)
		}
	}
	if resp, _, err := send(c, s, refreshRequest(s.SeedRefreshToken())); err != nil || resp.StatusCode != 502 {
		t.Errorf("refresh got %v %v, want the refresh-only fault", resp, err)
	}

	s.Fault(FaultStatus(503, "")) // Times 0: until cleared
	for range 3 {
		if status, _, _ := call(t, c, s, ccRequest()); status != 503 {
			t.Errorf("got %d, want a standing 503", status)
		}
	}
	s.ClearFaults()
	mustIssue(t, c, s, ccRequest())
}

func TestFaultValidation(t *testing.T) {
	t.Parallel()
	s, _ := start(t, Options{})
	for _, f := range []Fault{{Status: 99}, {Status: 600}, {Times: -1}, {Delay: -time.Second}, {Grant: "password"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Fault(%+v) did not panic", f)
				}
			}()
			s.Fault(f)
		}()
	}
}
