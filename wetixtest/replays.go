package wetixtest

import (
	"encoding/json"
	"sync"
)

// spentLedger remembers every refresh token WeTix has consumed, so a test can
// tell a replay (sending a token already spent, which a single-use refresh
// token scheme treats as theft and which no retry can make right) from a
// harmless resend of a token that never reached WeTix's token store.
type spentLedger struct {
	mu      sync.Mutex
	spent   map[string]struct{} // jti
	replays int
}

// spend records that the refresh token with this jti was consumed.
func (l *spentLedger) spend(jti string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.spent == nil {
		l.spent = map[string]struct{}{}
	}
	l.spent[jti] = struct{}{}
}

func (l *spentLedger) isSpent(jti string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.spent[jti]
	return ok
}

// noteArrival counts a replay when a refresh request carries a spent token,
// whatever the request's fate: a fault answering in WeTix's place does not
// make the resend any less of a replay.
func (s *Server) noteArrival(g Grant, body []byte) {
	if g != GrantRefresh {
		return
	}
	var req tokenRequest
	if json.Unmarshal(body, &req) != nil || req.RefreshToken == "" {
		return
	}
	c, ok := s.parse(req.RefreshToken, tokenTypeRefresh)
	if !ok || !s.ledger.isSpent(c.JTI) {
		return
	}
	s.ledger.mu.Lock()
	s.ledger.replays++
	s.ledger.mu.Unlock()
}

// Replays counts refresh requests that carried a refresh token WeTix had
// already consumed. A correct client keeps it at 0.
func (s *Server) Replays() int {
	s.ledger.mu.Lock()
	defer s.ledger.mu.Unlock()
	return s.ledger.replays
}

// IsRefreshTokenSpent reports whether WeTix consumed tok in an earlier
// refresh (revoked or expired tokens are dead, but not spent).
func (s *Server) IsRefreshTokenSpent(tok string) bool {
	c, ok := s.parse(tok, tokenTypeRefresh)
	return ok && s.ledger.isSpent(c.JTI)
}
