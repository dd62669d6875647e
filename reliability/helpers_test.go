package reliability

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// status reads <mount>/status.
func status(srv *vaulttest.Server, mount string) (map[string]interface{}, error) {
	s, err := srv.Client.Logical().Read(mount + "/status")
	if err != nil {
		return nil, err
	}
	if s == nil {
		return nil, errors.New("status: empty answer")
	}
	return s.Data, nil
}

// oneLine squeezes a multi-line Vault error into one line for tables.
func oneLine(s string) string {
	s = strings.ReplaceAll(s, "1 error occurred:", "")
	s = strings.Join(strings.Fields(s), " ")
	return strings.TrimPrefix(s, "* ")
}

func randomSuffix() string { return strings.ToLower(rand.Text()[:10]) }

// upstreamCalls is a snapshot of the emulator's counters.
type upstreamCalls struct{ cc, rf int }

func callsOf(em *wetixtest.Server) upstreamCalls {
	return upstreamCalls{em.Calls(wetixtest.GrantClientCredentials), em.Calls(wetixtest.GrantRefresh)}
}

func (a upstreamCalls) minus(b upstreamCalls) upstreamCalls {
	return upstreamCalls{a.cc - b.cc, a.rf - b.rf}
}
func (a upstreamCalls) total() int { return a.cc + a.rf }
func (a upstreamCalls) String() string {
	return fmt.Sprintf("%d refresh + %d client_credentials", a.rf, a.cc)
}

// waitStatus polls status until cond holds or the timeout passes.
func waitStatus(srv *vaulttest.Server, mount string, timeout time.Duration, cond func(map[string]interface{}) bool) (map[string]interface{}, error) {
	deadline := time.Now().Add(timeout)
	for {
		st, err := status(srv, mount)
		if err == nil && cond(st) {
			return st, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("condition not met in %s; last status %v", timeout, st)
			}
			return st, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func boolField(m map[string]interface{}, k string) bool {
	b, _ := m[k].(bool)
	return b
}

func stringField(m map[string]interface{}, k string) string {
	s, _ := m[k].(string)
	return s
}

// intField reads a JSON number field (the api client decodes into json.Number).
func intField(m map[string]interface{}, k string) int64 {
	switch v := m[k].(type) {
	case interface{ Int64() (int64, error) }:
		n, _ := v.Int64()
		return n
	case float64:
		return int64(v)
	case int64:
		return v
	case int:
		return int64(v)
	}
	return -1
}
