package reliability

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature/signaturetest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// secretSet collects every secret the workload handled.
type secretSet struct {
	byValue map[string]string // value -> kind
}

func (s *secretSet) add(kind, v string) {
	if v != "" {
		s.byValue[v] = kind
	}
}

func (s *secretSet) count(kind string) int {
	n := 0
	for _, k := range s.byValue {
		if k == kind {
			n++
		}
	}
	return n
}

const partialSecret = 12

// needle is a string that must never show up, and the secret it comes from.
type needle struct{ text, kind, secret string }

// needles are each secret whole, its claims and signature segments for JWTs
// (the header is the same for all tokens and not secret), and for client
// secrets any 12 characters of them, since a cut-off secret is still mostly
// leaked. Whole secrets come first.
func (s *secretSet) needles() []needle {
	var whole, parts []needle
	for v, kind := range s.byValue {
		whole = append(whole, needle{v, kind, v})
		if kind == "client secret" {
			for i := 0; i+partialSecret <= len(v); i++ {
				parts = append(parts, needle{v[i : i+partialSecret], kind + " (12 characters of it)", v})
			}
		}
		if seg := strings.Split(v, "."); len(seg) == 3 {
			parts = append(parts, needle{seg[1], kind + " (claims segment)", v}, needle{seg[2], kind + " (signature segment)", v})
		}
	}
	return append(whole, parts...)
}

// scan reports each secret found in text once, and returns how many were.
func (s *secretSet) scan(t *testing.T, where, text string) int {
	t.Helper()
	leaked := map[string]bool{}
	for _, n := range s.needles() {
		if leaked[n.secret] {
			continue
		}
		if i := strings.Index(text, n.text); i >= 0 {
			leaked[n.secret] = true
			lo, hi := max(0, i-100), min(len(text), i+len(n.text)+20)
			t.Errorf("LEAK: %s found in %s: ...%s...", n.kind, where, text[lo:hi])
		}
	}
	return len(leaked)
}

// leakScenario is a workload on its own mount and emulator, with the secrets
// it handled.
type leakScenario struct {
	t        *testing.T
	c        *api.Client
	em       *wetixtest.Server
	clientID string
	secret   string // the client secret configured first
	secrets  *secretSet
	issued   map[string]bool // access tokens collected, to check none was missed
	// texts are operator-visible answers: errors, warnings, status and
	// config reads (not the token read's data, which carries the token).
	texts []string
}

func newLeakScenario(t *testing.T, srv *vaulttest.Server, mount, clientID string, extraSecrets ...string) *leakScenario {
	t.Helper()
	secret := rand.Text() // random: no prefix shared with anything
	sc := &leakScenario{t: t, c: srv.Client, clientID: clientID, secret: secret, secrets: &secretSet{byValue: map[string]string{}}, issued: map[string]bool{}}
	for _, sec := range append([]string{secret}, extraSecrets...) {
		sc.secrets.add("client secret", sec)
		sc.secrets.add("client secret (as HTTP Basic credentials)", base64.StdEncoding.EncodeToString([]byte(clientID+":"+sec)))
	}
	sc.em = wetixtest.New(wetixtest.Options{ClientID: clientID, ClientSecret: secret, AccessTTL: time.Hour})
	t.Cleanup(sc.em.Close)
	if err := srv.TryMount(mount, vaulttest.PluginVersion); err != nil {
		t.Fatal(err)
	}
	seed := sc.em.SeedRefreshToken()
	sc.secrets.add("refresh token (seed)", seed)
	if err := sc.write("config write", mount+"/config", map[string]interface{}{
		"client_id": clientID, "client_secret": secret, "base_url": sc.em.URL(), "refresh_token": seed, "ttl": 60,
	}); err != nil {
		t.Fatal(err)
	}
	return sc
}

func (sc *leakScenario) collect() {
	p := sc.em.LastIssued()
	sc.secrets.add("access token", p.AccessToken)
	sc.secrets.add("refresh token", p.RefreshToken)
	if p.AccessToken != "" {
		sc.issued[p.AccessToken] = true
	}
}

func (sc *leakScenario) record(what, path string, s *api.Secret, err error) {
	if err != nil {
		sc.texts = append(sc.texts, what+" error: "+vaulttest.ErrText(err))
	}
	if s != nil {
		sc.texts = append(sc.texts, what+" warnings: "+strings.Join(s.Warnings, " | "))
		if !strings.HasSuffix(path, "/token") {
			b, _ := json.Marshal(s.Data)
			sc.texts = append(sc.texts, what+" data: "+string(b))
		}
	}
}

func (sc *leakScenario) write(what, path string, data map[string]interface{}) error {
	s, err := sc.c.Logical().Write(path, data)
	sc.record(what, path, s, err)
	sc.collect()
	return err
}

func (sc *leakScenario) read(what, path string) *api.Secret {
	s, err := sc.c.Logical().Read(path)
	sc.record(what, path, s, err)
	sc.collect()
	return s
}

func (sc *leakScenario) mustRead(what, path string) {
	sc.t.Helper()
	if s := sc.read(what, path); s == nil {
		sc.t.Fatalf("%s: no answer", what)
	}
}

func (sc *leakScenario) mustWrite(what, path string, data map[string]interface{}) {
	sc.t.Helper()
	if err := sc.write(what, path, data); err != nil {
		sc.t.Fatalf("%s: %v", what, err)
	}
}

// checkCollected fails if WeTix issued a pair the scenario did not collect.
func (sc *leakScenario) checkCollected(atLeast int) int {
	sc.t.Helper()
	n := sc.em.Successes(wetixtest.GrantClientCredentials) + sc.em.Successes(wetixtest.GrantRefresh)
	if len(sc.issued) != n {
		sc.t.Fatalf("collected %d access tokens, WeTix issued %d pairs: the scan would miss some", len(sc.issued), n)
	}
	if n < atLeast {
		sc.t.Fatalf("workload issued only %d pairs", n)
	}
	return n
}

// TestSecretLeaks runs a representative workload against a trace-level Vault
// with a file audit device, then scans the server log (which carries the
// plugin's log), the audit log, and every error, warning, status and config
// answer for every client secret, refresh token and access token involved.
// A second scenario has WeTix echo the secrets back in its error answers.
func TestSecretLeaks(t *testing.T) {
	srv, _ := vaulttest.StartWithPlugin(t, vaulttest.Options{LogLevel: "trace"})
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	if err := srv.Client.Sys().EnableAuditWithOptions("file", &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": auditPath}}); err != nil {
		t.Fatal(err)
	}

	// The workload: config, reads, rotate, status, and the faults an
	// operator meets.
	const mount = "leak"
	secret2 := rand.Text() // the client secret after the provider rotates it
	w := newLeakScenario(t, srv, mount, "leak-client", secret2)
	em := w.em
	w.mustRead("config read", mount+"/config")
	w.mustRead("first token read", mount+"/token") // the seed's refresh grant
	w.mustRead("status", mount+"/status")
	w.mustWrite("rotate", mount+"/rotate", nil)
	w.mustRead("second token read", mount+"/token")
	// invalid_grant: falls back to the client-credentials grant.
	em.Fault(wetixtest.FaultInvalidGrant().For(wetixtest.GrantRefresh).Limit(1))
	w.mustWrite("rotate after invalid_grant", mount+"/rotate", nil)
	// HTML error pages: the old token is served with a warning.
	em.Fault(wetixtest.FaultHTML(http.StatusBadGateway))
	_ = w.write("rotate during HTML 502s", mount+"/rotate", nil)
	w.read("token read during HTML 502s", mount+"/token")
	w.read("status during HTML 502s", mount+"/status")
	em.ClearFaults()
	// The provider rotates the client secret: invalid_client until the
	// operator writes the new one.
	em.SetClientSecret(secret2)
	time.Sleep(vaulttest.FailureCooldown) // the HTML failure's cooldown
	_ = w.write("rotate with a revoked client secret", mount+"/rotate", nil)
	w.read("status with a revoked client secret", mount+"/status")
	w.read("token read with a revoked client secret", mount+"/token")
	w.mustWrite("config write of the new secret", mount+"/config", map[string]interface{}{"client_secret": secret2})
	w.mustRead("token read after the new secret", mount+"/token")
	// A second seed, then a truncated refresh answer.
	seed2 := em.SeedRefreshToken()
	w.secrets.add("refresh token (seed)", seed2)
	w.mustWrite("config write of a seed", mount+"/config", map[string]interface{}{"refresh_token": seed2})
	w.mustRead("token read from the seed", mount+"/token")
	em.Fault(wetixtest.Fault{Truncate: true}.For(wetixtest.GrantRefresh).Limit(1))
	w.mustWrite("rotate after a truncated answer", mount+"/rotate", nil)
	w.mustRead("final token read", mount+"/token")
	w.mustRead("final status", mount+"/status")
	w.mustRead("final config read", mount+"/config")
	if _, err := srv.CLI("lease", "revoke", "-prefix", mount+"/token"); err != nil {
		t.Fatal(err)
	}
	w.checkCollected(6)

	// An upstream that echoes what it was sent in its error answers.
	const echoMount = "leak-echo"
	x := newLeakScenario(t, srv, echoMount, "echo-client")
	x.mustRead("token read", echoMount+"/token")
	held := x.em.LastIssued()
	xs := x.secret
	x.em.Fault(wetixtest.FaultStatus(http.StatusServiceUnavailable, fmt.Sprintf(
		`{"error":"invalid_request","error_description":"refresh_token %s of client %s:%s rejected; access token %s"}`,
		held.RefreshToken, x.clientID, xs, held.AccessToken)).Limit(4))
	_ = x.write("rotate against a JSON echo", echoMount+"/rotate", nil)
	x.read("status after a JSON echo", echoMount+"/status")
	// A 200 that is not a token answer (a proxy's debug page, say).
	x.em.Fault(wetixtest.Fault{Body: "upstream debug: client " + x.clientID + " secret " + xs + " refused", ContentType: "text/plain"}.Limit(4))
	time.Sleep(vaulttest.FailureCooldown)
	_ = x.write("rotate against a 200 echo page", echoMount+"/rotate", nil)
	x.read("status after a 200 echo page", echoMount+"/status")
	x.checkCollected(1)

	// The signing key and the orders it signs: the private key (as imported,
	// and in the PKCS#8 form the plugin stores) and the customer data in an
	// order must appear nowhere either.
	keyPEM, key := signaturetest.Key(t)
	for _, line := range strings.Split(strings.TrimSpace(keyPEM), "\n") {
		if !strings.HasPrefix(line, "-----") {
			w.secrets.add("private key (a PEM line)", line)
		}
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	stored := base64.StdEncoding.EncodeToString(pkcs8)
	for i := 0; i+64 <= len(stored); i += 64 {
		w.secrets.add("private key (stored form)", stored[i:i+64])
	}
	const email, phone = "leak.customer.7q2@example.com", "60197351135"
	w.secrets.add("customer email", email)
	w.secrets.add("customer phone", phone)
	order := `{"sessionKey":"s1","customer":{"email":"` + email + `","phoneNo":"` + phone + `","countryCode":"60"},"tickets":[{"key":"k","quantity":1}]}`
	w.mustWrite("signing key import", mount+"/signing-key", map[string]interface{}{"private_key": keyPEM})
	w.mustRead("signing key read", mount+"/signing-key")
	w.mustWrite("sign", mount+"/sign", map[string]interface{}{"mutation": "createMovieOrder", "input": order})
	_ = w.write("sign with bad input", mount+"/sign", map[string]interface{}{"mutation": "createMovieOrder", "input": order[:len(order)-3]})
	_ = w.write("signing key import over a key", mount+"/signing-key", map[string]interface{}{"private_key": keyPEM})
	w.mustWrite("next key", mount+"/signing-key/next", nil)
	w.mustWrite("promote", mount+"/signing-key/promote", nil)
	w.mustWrite("sign after promote", mount+"/sign", map[string]interface{}{"mutation": "confirmMovieOrder", "input": order})
	w.mustRead("status with signing keys", mount+"/status")

	time.Sleep(time.Second) // let the plugin's last log lines reach the server log
	serverLog := srv.Log()
	auditLog, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	// The scan must be able to fail: the plugin's log does reach the file.
	if !strings.Contains(serverLog, "WeTix token refreshed") || !strings.Contains(serverLog, "falling back to the client-credentials grant") {
		t.Fatalf("the server log lacks the plugin's log lines")
	}
	for _, s := range []struct {
		name string
		sc   *leakScenario
	}{{"workload", w}, {"upstream-echoes-secrets", x}} {
		t.Run(s.name, func(t *testing.T) {
			found := s.sc.secrets.scan(t, "the Vault server log", serverLog) +
				s.sc.secrets.scan(t, "the audit log", string(auditLog))
			for _, txt := range s.sc.texts {
				found += s.sc.secrets.scan(t, "an API answer", txt)
			}
			var parts []string
			for _, k := range []string{"client secret", "refresh token", "refresh token (seed)", "access token", "private key (a PEM line)", "private key (stored form)", "customer email", "customer phone"} {
				parts = append(parts, fmt.Sprintf("%d %s", s.sc.secrets.count(k), k))
			}
			t.Logf("SUMMARY leaks %s: scanned server log %d lines / %d bytes, audit log %d lines / %d bytes, %d API answers (errors, warnings, status, config); needles: %s (%d strings incl. JWT segments, Basic credentials, 12-char pieces of secrets); found: %d",
				s.name, lineCount(serverLog), len(serverLog), lineCount(string(auditLog)), len(auditLog), len(s.sc.texts), strings.Join(parts, ", "), len(s.sc.secrets.needles()), found)
		})
	}

	// The audit device HMACs what it logs; nothing in the plugin opts out.
	n := checkAuditHMAC(t, auditLog, mount)
	t.Logf("audit log: %d HMAC'd token response / config request fields checked", n)
}

func lineCount(s string) int { return strings.Count(s, "\n") }

// checkAuditHMAC checks that the token response's access_token and the config
// request's secrets are HMAC'd in the audit log, and returns how many fields
// it checked.
func checkAuditHMAC(t *testing.T, auditLog []byte, mount string) int {
	t.Helper()
	type entry struct {
		Type    string `json:"type"`
		Request struct {
			Path      string                 `json:"path"`
			Operation string                 `json:"operation"`
			Data      map[string]interface{} `json:"data"`
		} `json:"request"`
		Response struct {
			Data map[string]interface{} `json:"data"`
		} `json:"response"`
	}
	checked, tokenResponses, configRequests := 0, 0, 0
	sc := bufio.NewScanner(bytes.NewReader(auditLog))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	hmacd := func(where string, v interface{}) {
		checked++
		if s, _ := v.(string); !strings.HasPrefix(s, "hmac-sha256:") {
			t.Errorf("audit log: %s is not HMAC'd: %v", where, v)
		}
	}
	for sc.Scan() {
		var e entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit log line is not JSON: %v", err)
		}
		switch {
		case e.Type == "response" && e.Request.Path == mount+"/token" && e.Request.Operation == "read" && e.Response.Data != nil:
			tokenResponses++
			hmacd("token response access_token", e.Response.Data["access_token"])
		case e.Type == "request" && e.Request.Path == mount+"/config" && e.Request.Operation != "read":
			configRequests++
			for _, k := range []string{"client_secret", "refresh_token"} {
				if v, ok := e.Request.Data[k]; ok {
					hmacd("config request "+k, v)
				}
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if tokenResponses < 5 || configRequests < 3 {
		t.Errorf("audit log has %d token read responses and %d config writes; the workload made more", tokenResponses, configRequests)
	}
	return checked
}
