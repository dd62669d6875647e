package wetixtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

const adminPrefix = "/_emulator/"

// grantStats is one grant's counters as the admin API reports them.
type grantStats struct {
	Calls     int `json:"calls"`
	Successes int `json:"successes"`
}

// faultJSON is Fault on the wire: snake_case names and Delay as a Go
// duration string ("2s"), which shell scripts can write by hand.
type faultJSON struct {
	Grant            Grant       `json:"grant"`
	Times            int         `json:"times"`
	Status           int         `json:"status"`
	Body             string      `json:"body"`
	ContentType      string      `json:"content_type"`
	Header           http.Header `json:"header"`
	Delay            string      `json:"delay"`
	Drop             bool        `json:"drop"`
	Truncate         bool        `json:"truncate"`
	OmitRefreshToken bool        `json:"omit_refresh_token"`
	OmitExpiresIn    bool        `json:"omit_expires_in"`
	Process          bool        `json:"process"`
}

func (j faultJSON) fault() (Fault, error) {
	f := Fault{
		Grant: j.Grant, Times: j.Times, Status: j.Status, Body: j.Body,
		ContentType: j.ContentType, Header: j.Header, Drop: j.Drop, Truncate: j.Truncate,
		OmitRefreshToken: j.OmitRefreshToken, OmitExpiresIn: j.OmitExpiresIn, Process: j.Process,
	}
	if j.Delay != "" {
		d, err := time.ParseDuration(j.Delay)
		if err != nil {
			return Fault{}, fmt.Errorf("delay: %w", err)
		}
		f.Delay = d
	}
	return f, f.validate()
}

// adminMux leans on ServeMux method patterns for 405 and Allow.
func (s *Server) adminMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+adminPrefix+"stats", s.adminStats)
	mux.HandleFunc("POST "+adminPrefix+"faults", s.adminAddFault)
	mux.HandleFunc("DELETE "+adminPrefix+"faults", s.adminClearFaults)
	mux.HandleFunc("POST "+adminPrefix+"reset-counts", s.adminResetCounts)
	mux.HandleFunc("POST "+adminPrefix+"seed-refresh-token", s.adminSeed)
	mux.HandleFunc("POST "+adminPrefix+"revoke-refresh-tokens", s.adminRevoke)
	s.adminSigningKeyRoutes(mux)
	return mux
}

func (s *Server) adminStats(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	stats := map[Grant]grantStats{}
	for _, g := range []Grant{GrantClientCredentials, GrantRefresh} {
		stats[g] = grantStats{Calls: s.calls[g], Successes: s.successes[g]}
	}
	s.mu.Unlock()
	writeResult(w, jsonResult(http.StatusOK, stats))
}

func (s *Server) adminAddFault(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "unreadable body")
		return
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // a misspelt field would otherwise install a silent no-op
	var j faultJSON
	if err := dec.Decode(&j); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "bad fault JSON: "+err.Error())
		return
	}
	f, err := j.fault()
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "bad fault: "+err.Error())
		return
	}
	s.Fault(f)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminClearFaults(w http.ResponseWriter, _ *http.Request) {
	s.ClearFaults()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminResetCounts(w http.ResponseWriter, _ *http.Request) {
	s.ResetCounts()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) adminSeed(w http.ResponseWriter, _ *http.Request) {
	writeResult(w, jsonResult(http.StatusOK, map[string]string{"refresh_token": s.SeedRefreshToken()}))
}

func (s *Server) adminRevoke(w http.ResponseWriter, _ *http.Request) {
	s.RevokeAllRefreshTokens()
	w.WriteHeader(http.StatusNoContent)
}
