package wetixtest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func admin(t *testing.T, c *http.Client, s *Server, method, path, body string) (int, []byte) {
	t.Helper()
	resp, raw, err := send(c, s, request{method: method, path: adminPrefix + path, body: body, noAuth: true})
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, raw
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	s, c := start(t, Options{})

	status, raw := admin(t, c, s, "POST", "seed-refresh-token", "")
	var seeded struct {
		RefreshToken string `json:"refresh_token"`
	}
	if status != 200 || json.Unmarshal(raw, &seeded) != nil || !s.IsRefreshTokenLive(seeded.RefreshToken) {
		t.Fatalf("seed: %d %s", status, raw)
	}
	if s.Calls(GrantRefresh) != 0 {
		t.Error("admin calls were counted as grant calls")
	}

	fault := `{"grant":"refresh_token","times":1,"status":503,"delay":"20ms","header":{"Retry-After":["3"]},"process":true}`
	if status, raw := admin(t, c, s, "POST", "faults", fault); status != 204 {
		t.Fatalf("add fault: %d %s", status, raw)
	}
	begin := time.Now()
	resp, _, err := send(c, s, refreshRequest(seeded.RefreshToken))
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" || time.Since(begin) < 20*time.Millisecond {
		t.Fatalf("faulted refresh: %v %v", resp, err)
	}
	if s.IsRefreshTokenLive(seeded.RefreshToken) {
		t.Error(`"process":true did not spend the refresh token`)
	}
	mustIssue(t, c, s, ccRequest())

	status, raw = admin(t, c, s, "GET", "stats", "")
	var stats map[Grant]struct{ Calls, Successes int }
	if status != 200 || json.Unmarshal(raw, &stats) != nil {
		t.Fatalf("stats: %d %s", status, raw)
	}
	if st := stats[GrantRefresh]; st.Calls != 1 || st.Successes != 1 {
		t.Errorf("refresh stats %+v", st)
	}
	if st := stats[GrantClientCredentials]; st.Calls != 1 || st.Successes != 1 {
		t.Errorf("client_credentials stats %+v", st)
	}

	admin(t, c, s, "POST", "faults", `{"status":500}`)
	if status, _ := admin(t, c, s, "DELETE", "faults", ""); status != 204 {
		t.Errorf("clear faults: %d", status)
	}
	mustIssue(t, c, s, ccRequest())

	if status, _ := admin(t, c, s, "POST", "reset-counts", ""); status != 204 || s.Calls(GrantClientCredentials) != 0 {
		t.Errorf("reset-counts: %d, calls %d", status, s.Calls(GrantClientCredentials))
	}

	live := s.SeedRefreshToken()
	if status, _ := admin(t, c, s, "POST", "revoke-refresh-tokens", ""); status != 204 || s.IsRefreshTokenLive(live) {
		t.Errorf("revoke: %d", status)
	}
}

func TestAdminAPIRejects(t *testing.T) {
	t.Parallel()
	s, c := start(t, Options{})
	for _, tc := range []struct {
		method, path, body string
		status             int
	}{
		{"POST", "faults", `{"stauts":500}`, 400},
		{"POST", "faults", `{"delay":"soon"}`, 400},
		{"POST", "faults", `{"status":42}`, 400},
		{"POST", "faults", `{"grant":"password"}`, 400},
		{"POST", "faults", `not json`, 400},
		{"GET", "faults", ``, 405},
		{"POST", "stats", ``, 405},
		{"GET", "nothing", ``, 404},
	} {
		status, raw := admin(t, c, s, tc.method, tc.path, tc.body)
		if status != tc.status {
			t.Errorf("%s %s %s: got %d %s, want %d", tc.method, tc.path, tc.body, status, raw, tc.status)
		}
		if tc.status == 400 && !strings.Contains(string(raw), "invalid_request") {
			t.Errorf("%s: body %s", tc.body, raw)
		}
	}
	mustIssue(t, c, s, ccRequest()) // no rejected fault got installed
}
