package wetixtest

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"
)

// maxBodyBytes is far above any real request (a refresh token is < 1 KiB)
// but bounds what a misbehaving client can make the emulator buffer.
const maxBodyBytes = 64 << 10

// result is a composed answer kept apart from writing it, so a fault can
// replace, delay, cut or drop it.
type result struct {
	status int
	header http.Header
	body   []byte
}

// mode says how far processing goes.
type mode struct {
	// commit records the pair, spends the presented refresh token and counts
	// a success. Without it the answer is rendered but never happened: its
	// tokens are signed with a throwaway key and so are valid nowhere.
	commit bool
	// rotate mints a new refresh token. Without it (OmitRefreshToken) the
	// presented refresh token is not spent either: a server that sends no
	// new one must leave the old one usable, or the client is stranded.
	rotate        bool
	omitExpiresIn bool
}

var normal = mode{commit: true, rotate: true}

type tokenRequest struct {
	GrantType    string `json:"grant_type"`
	RefreshToken string `json:"refresh_token"`
}

// tokenResponse keeps the docs' field order. Pointers let faults omit fields.
type tokenResponse struct {
	AccessToken           string `json:"access_token"`
	ExpiresIn             *int64 `json:"expires_in,omitempty"`
	RefreshToken          string `json:"refresh_token,omitempty"`
	RefreshTokenExpiresIn *int64 `json:"refresh_token_expires_in,omitempty"`
	TokenType             string `json:"token_type"`
}

func (s *Server) serveGrant(w *recorder, r *http.Request, g Grant) {
	// Read everything first: Calls counts requests that were received, and
	// Drop must not close a connection with request bytes still unread.
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	s.noteArrival(g, body)
	f, faulted := s.arrive(g)
	if !faulted {
		writeResult(w, s.process(r, body, readErr, g, normal))
		return
	}
	w.fault = f.summary()
	var res *result
	if f.Process || f.OmitRefreshToken || f.OmitExpiresIn {
		res = s.process(r, body, readErr, g, mode{commit: true, rotate: !f.OmitRefreshToken, omitExpiresIn: f.OmitExpiresIn})
	}
	if f.Delay > 0 && !s.sleep(r, f.Delay) {
		// The client gave up or the server is closing. Returning would let
		// net/http send an empty 200 on a still-open connection.
		drop(w)
		return
	}
	if res == nil {
		switch {
		case f.Drop || f.Status != 0 || f.Body != "":
			// The fault stands in for WeTix: the request never got processed.
		case f.Truncate:
			m := normal
			m.commit = false
			res = s.process(r, body, readErr, g, m)
		default: // Delay or Header alone: a slow but working WeTix
			res = s.process(r, body, readErr, g, normal)
		}
	}
	s.applyFault(w, f, res)
}

// arrive counts the call and takes the first matching fault, under one lock
// so that concurrent requests consume a fault's Times exactly.
func (s *Server) arrive(g Grant) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[g]++
	for i, f := range s.faults {
		if f.Grant != "" && f.Grant != g {
			continue
		}
		if f.Times > 0 {
			s.faults[i].Times--
			if s.faults[i].Times == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return f, true
	}
	return Fault{}, false
}

func (s *Server) sleep(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.done:
		return false
	}
}

// process answers as WeTix would. Checks run in RFC 6749 order: client
// authentication before anything about the request body.
func (s *Server) process(r *http.Request, body []byte, readErr error, g Grant, m mode) *result {
	if r.Method != http.MethodPost {
		res := errorResult(http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
		res.header.Set("Allow", http.MethodPost)
		return res
	}
	if !s.authenticate(r) {
		res := errorResult(http.StatusUnauthorized, "invalid_client", "client authentication failed")
		res.header.Set("WWW-Authenticate", `Basic realm="WeTix OAuth"`)
		return res
	}
	if readErr != nil {
		return errorResult(http.StatusBadRequest, "invalid_request", "request body is unreadable or too large")
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return errorResult(http.StatusBadRequest, "invalid_request", "content type must be application/json")
	}
	var req tokenRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return errorResult(http.StatusBadRequest, "invalid_request", "request body must be a JSON object")
	}
	// Error descriptions are fixed strings: nothing the client sent is echoed,
	// so a secret put in the wrong field cannot leak into logs.
	switch req.GrantType {
	case string(g):
	case "":
		return errorResult(http.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		return errorResult(http.StatusBadRequest, "unsupported_grant_type", "grant_type must be "+string(g)+" on this endpoint")
	}
	now := s.opts.Now()
	if g == GrantClientCredentials {
		s.mu.Lock()
		defer s.mu.Unlock()
		if m.commit && s.opts.RevokeOnClientCredentials {
			clear(s.live)
			s.revokeAccessLocked()
		}
		return s.issueLocked(g, now, m)
	}
	if req.RefreshToken == "" {
		return errorResult(http.StatusBadRequest, "invalid_request", "refresh_token is required")
	}
	c, ok := s.parse(req.RefreshToken, tokenTypeRefresh)
	if !ok || !c.validAt(now) {
		return invalidGrant()
	}
	// Check and spend under one lock: of concurrent uses of a single-use
	// token exactly one may win.
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, live := s.live[c.JTI]; !live {
		return invalidGrant()
	}
	if m.commit && m.rotate && !s.opts.AllowRefreshReuse {
		delete(s.live, c.JTI)
		s.ledger.spend(c.JTI)
	}
	if m.commit && s.opts.RevokeAccessOnRefresh {
		s.revokeAccessLocked()
	}
	return s.issueLocked(g, now, m)
}

// revokeAccessLocked kills every access token issued so far.
func (s *Server) revokeAccessLocked() {
	for jti := range s.issuedAccess {
		s.revokedBefore[jti] = struct{}{}
	}
	clear(s.issuedAccess)
}

func invalidGrant() *result {
	return errorResult(http.StatusBadRequest, "invalid_grant", "refresh token is invalid or expired")
}

func (s *Server) issueLocked(g Grant, now time.Time, m mode) *result {
	key := s.key
	if !m.commit {
		key = make([]byte, 32) // all zero is fine: it only has to differ from s.key
	}
	accessSecs := ttlSeconds(s.opts.AccessTTL)
	access := newClaims(tokenTypeAccess, s.clientKey, s.opts.Issuer, now, accessSecs)
	pair := Pair{Grant: g, AccessToken: sign(key, access), AccessExpiresAt: access.expiresAt()}
	resp := tokenResponse{AccessToken: pair.AccessToken, TokenType: "Bearer"}
	if !m.omitExpiresIn {
		resp.ExpiresIn = &accessSecs
	}
	if m.rotate {
		refreshSecs := ttlSeconds(s.opts.RefreshTTL)
		refresh := newClaims(tokenTypeRefresh, s.clientKey, s.opts.Issuer, now, refreshSecs)
		pair.RefreshToken, pair.RefreshExpiresAt = sign(key, refresh), refresh.expiresAt()
		resp.RefreshToken, resp.RefreshTokenExpiresIn = pair.RefreshToken, &refreshSecs
		if m.commit {
			s.live[refresh.JTI] = struct{}{}
		}
	}
	if m.commit {
		s.successes[g]++
		s.last = pair
		if s.opts.RevokeAccessOnRefresh || s.opts.RevokeOnClientCredentials {
			s.issuedAccess[access.JTI] = struct{}{}
		}
	}
	return jsonResult(http.StatusOK, resp)
}

func jsonResult(status int, v any) *result {
	body, err := json.Marshal(v)
	if err != nil {
		panic("wetixtest: marshal answer: " + err.Error()) // fixed types: cannot happen
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	// Token answers must never be cached by anything in between.
	h.Set("Cache-Control", "no-store")
	return &result{status: status, header: h, body: body}
}

func errorResult(status int, code, description string) *result {
	return jsonResult(status, map[string]string{"error": code, "error_description": description})
}

func writeError(w http.ResponseWriter, status int, code, description string) {
	writeResult(w, errorResult(status, code, description))
}

func writeResult(w http.ResponseWriter, res *result) {
	h := w.Header()
	for k, v := range res.header {
		h[k] = append(h[k], v...)
	}
	h.Set("Content-Length", strconv.Itoa(len(res.body)))
	w.WriteHeader(res.status)
	w.Write(res.body)
}
