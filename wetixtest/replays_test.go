package wetixtest

import (
	"bytes"
	"net/http"
	"testing"
)

func refreshOnce(t *testing.T, s *Server, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.URL()+"/auth/refresh", bytes.NewReader([]byte(`{"grant_type":"refresh_token","refresh_token":"`+token+`"}`)))
	req.SetBasicAuth(defaultClientID, defaultClientSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestReplaysCountsOnlySpentRefreshTokens(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	seed := s.SeedRefreshToken()

	// A refresh WeTix never processed leaves the token unspent: resending
	// it is not a replay.
	s.Fault(FaultStatus(503, "").Limit(1))
	refreshOnce(t, s, seed)
	if s.Replays() != 0 || s.IsRefreshTokenSpent(seed) {
		t.Fatal("a token that was never processed counts as spent")
	}
	if code := refreshOnce(t, s, seed); code != http.StatusOK {
		t.Fatalf("first use: HTTP %d", code)
	}
	if !s.IsRefreshTokenSpent(seed) || s.Replays() != 0 {
		t.Fatal("first use not recorded as a spend, or counted as a replay")
	}
	// Sending it again is a replay, even when a fault answers in WeTix's
	// place.
	refreshOnce(t, s, seed)
	s.Fault(FaultStatus(503, "").Limit(1))
	refreshOnce(t, s, seed)
	if n := s.Replays(); n != 2 {
		t.Fatalf("Replays() = %d, want 2", n)
	}
	// A revoked token is dead but was never spent.
	other := s.SeedRefreshToken()
	s.RevokeAllRefreshTokens()
	refreshOnce(t, s, other)
	if s.IsRefreshTokenSpent(other) || s.Replays() != 2 {
		t.Fatal("a revoked token counts as spent")
	}
}
