package acceptance

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature/signaturetest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// orderJSON is a createMovieOrder input as an app holds it: unsorted,
// pretty-printed, with a price whose text (1.50) a float would change and
// customer data that must not leak.
const orderJSON = `{
  "sessionKey": "EhFNb3ZpZU9yZGVyU2Vzc2lvbiIb",
  "referenceId": "ref-<&>-1",
  "customer": {"externalId": null, "email": "leak-canary-customer@example.com", "countryCode": "60", "phoneNo": "167385346"},
  "tickets": [{"key": "U_-HAwEBCUdvYlRpY2tldAH", "quantity": 2, "price": 1.50}],
  "concessions": null, "bundles": null, "promoCode": null
}`

// publicKeyOf parses the PEM public_key a read returns.
func publicKeyOf(t *testing.T, pemText string) *rsa.PublicKey {
	t.Helper()
	block, _ := pem.Decode([]byte(pemText))
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("public_key is not a PEM PUBLIC KEY: %q", pemText)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PublicKey)
}

// sendPublicKeyToWeTix is the operator's step: register the public key with
// (the emulator of) WeTix through its admin API, over HTTP.
func sendPublicKeyToWeTix(t *testing.T, emu *wetixtest.Server, pemText string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"public_key": pemText})
	req, _ := http.NewRequest(http.MethodPut, emu.URL()+"/_emulator/signing-public-key", bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("registering the public key: %d %s", resp.StatusCode, b)
	}
}

// signatureArg turns a sign response's data into the mutation's signature
// argument, as an app embeds it.
func signatureArg(t *testing.T, data map[string]interface{}) json.RawMessage {
	t.Helper()
	for k := range data {
		if k != "algorithm" && k != "timestamp" && k != "hash" {
			t.Fatalf("sign answered with field %q; the signature argument has only algorithm, timestamp, hash", k)
		}
	}
	raw, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func wantAccepted(t *testing.T, what string, emu *wetixtest.Server, token, mutation string, input string, sig json.RawMessage) {
	t.Helper()
	res, err := wetixtest.SendMutation(context.Background(), http.DefaultClient, emu.URL(), token, mutation, json.RawMessage(input), sig)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if res.Status != http.StatusOK || res.Code() != "" {
		t.Fatalf("%s: WeTix refused the mutation: %d %+v", what, res.Status, res.Errors)
	}
}

// TestSigningEndToEnd is the integrator's whole flow through a real Vault:
// the operator generates the key and sends its public key to WeTix; the app
// reads a token and signs through the API and through the vault CLI; WeTix
// accepts each mutation.
func TestSigningEndToEnd(t *testing.T) {
	vaulttest.RequireLong(t)
	s, emu := setup(t, wetixtest.Options{}, nil)

	var gen struct {
		Data map[string]interface{} `json:"data"`
	}
	mustJSON(t, []byte(s.MustCLI("write", "-format=json", "-f", "wetix/signing-key")), &gen)
	sec, err := s.Client.Logical().Read("wetix/signing-key")
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := sec.Data["public_key"].(string)
	if pubPEM != gen.Data["public_key"] || sec.Data["key_bits"] != json.Number("2048") || sec.Data["source"] != "generated" {
		t.Fatalf("read after generate: %v", sec.Data)
	}
	publicKeyOf(t, pubPEM)
	sendPublicKeyToWeTix(t, emu, pubPEM)

	token, _ := vaulttest.MustReadToken(t, s.Client, "wetix")

	// API, input as a JSON string: exact text, numbers included.
	resp, err := s.Client.Logical().Write("wetix/sign", map[string]interface{}{"mutation": "createMovieOrder", "input": orderJSON})
	if err != nil {
		t.Fatal(err)
	}
	wantAccepted(t, "API sign, string input", emu, token, "createMovieOrder", orderJSON, signatureArg(t, resp.Data))

	// API, input as a JSON object: what reaches the plugin is equal, and
	// WeTix accepts the app's own serialisation (numbers:
	// TestSigningGoRuleEndToEnd).
	obj := map[string]interface{}{"referenceId": "r-2", "orderId": "o-9", "tickets": []interface{}{map[string]interface{}{"key": "k"}}, "promoCode": nil}
	resp, err = s.Client.Logical().Write("wetix/sign", map[string]interface{}{"mutation": "confirmMovieOrder", "input": obj})
	if err != nil {
		t.Fatal(err)
	}
	objJSON, _ := json.Marshal(obj)
	wantAccepted(t, "API sign, object input", emu, token, "confirmMovieOrder", string(objJSON), signatureArg(t, resp.Data))

	// CLI, as the README shows it.
	orderFile := filepath.Join(t.TempDir(), "order.json")
	os.WriteFile(orderFile, []byte(orderJSON), 0o600)
	var cli struct {
		Data map[string]interface{} `json:"data"`
	}
	mustJSON(t, []byte(s.MustCLI("write", "-format=json", "wetix/sign", "mutation=confirmMovieOrder", "input=@"+orderFile)), &cli)
	wantAccepted(t, "CLI sign", emu, token, "confirmMovieOrder", orderJSON, signatureArg(t, cli.Data))

	if acc, ref := emu.SignedMutations(); acc["createMovieOrder"] != 1 || acc["confirmMovieOrder"] != 2 || len(ref) != 0 {
		t.Fatalf("WeTix accepted %v and refused %v", acc, ref)
	}

	for _, path := range []string{"signing-key", "signing-key/next", "signing-key/promote", "signing-key/rollback", "sign"} {
		help := parsePathHelp(s.MustCLI("path-help", "wetix/"+path))
		if help.synopsis == "" || help.description == "" {
			t.Errorf("path-help wetix/%s: synopsis %q, description %q", path, help.synopsis, help.description)
		}
		for name, desc := range help.fields {
			if desc == "" {
				t.Errorf("path-help wetix/%s: field %s has no description", path, name)
			}
		}
	}
}

// riskyOrder is a createMovieOrder input holding what the v0.1 rule signed
// differently from WeTix's Go server: & < > (a query string, a name),
// U+2028, decimals whose text float64 changes, an exponent and an integer
// beyond 2^53.
const riskyOrder = `{"sessionKey":"EhFNb3ZpZU9yZGVyU2Vzc2lvbiIb","referenceId":"a&b<c>","promoCode":"<SAVE&10>",` +
	`"redirectUrl":"https://shop.example/done?a=1&b=2","customer":{"name":"Tom & Jerry \u2028 Co","email":"x@example.com"},` +
	`"tickets":[{"key":"k","quantity":2,"price":12.50,"fee":1e2,"externalId":12345678901234567890}],"bundles":null}`

// TestSigningGoRuleEndToEnd: a signature made through a real Vault over
// riskyOrder, sent as a string, as an object in the request body (Vault
// decodes it; numbers reach the plugin as float64) and through the CLI, is
// accepted by an emulator that rebuilds the signed JSON as Go's
// encoding/json does, independently of the plugin's code. The v0.1 code
// signed & < > raw and kept 12.50, so WeTix refused all three; the same
// test fails there. The large integer gets a warning naming its path.
func TestSigningGoRuleEndToEnd(t *testing.T) {
	vaulttest.RequireLong(t)
	s, emu := setup(t, wetixtest.Options{}, nil)
	key, err := s.Client.Logical().Write("wetix/signing-key", nil)
	if err != nil {
		t.Fatal(err)
	}
	sendPublicKeyToWeTix(t, emu, key.Data["public_key"].(string))
	token, _ := vaulttest.MustReadToken(t, s.Client, "wetix")

	resp, err := s.Client.Logical().Write("wetix/sign", map[string]interface{}{"mutation": "createMovieOrder", "input": riskyOrder})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "input.tickets[0].externalId") {
		t.Errorf("warnings %q; want one naming input.tickets[0].externalId", resp.Warnings)
	}
	wantAccepted(t, "string input", emu, token, "createMovieOrder", riskyOrder, signatureArg(t, resp.Data))

	status, raw := rawPost(t, s.Addr, "wetix/sign", s.Token, []byte(`{"mutation":"createMovieOrder","input":`+riskyOrder+`}`))
	var objResp struct {
		Data     map[string]interface{} `json:"data"`
		Warnings []string               `json:"warnings"`
	}
	mustJSON(t, raw, &objResp)
	if status != http.StatusOK {
		t.Fatalf("object input: %d %s", status, raw)
	}
	wantAccepted(t, "object input", emu, token, "createMovieOrder", riskyOrder, signatureArg(t, objResp.Data))
	if len(objResp.Warnings) != 1 || !strings.Contains(objResp.Warnings[0], "input.tickets[0].externalId") {
		t.Errorf("object input: warnings %q; want one naming input.tickets[0].externalId", objResp.Warnings)
	}

	orderFile := filepath.Join(t.TempDir(), "order.json")
	os.WriteFile(orderFile, []byte(riskyOrder), 0o600)
	var cli struct {
		Data map[string]interface{} `json:"data"`
	}
	mustJSON(t, []byte(s.MustCLI("write", "-format=json", "wetix/sign", "mutation=createMovieOrder", "input=@"+orderFile)), &cli)
	wantAccepted(t, "CLI input=@file", emu, token, "createMovieOrder", riskyOrder, signatureArg(t, cli.Data))
}

// TestSigningLiteralRuleEndToEnd: the escape hatch. A mount switched to
// canonical_json=literal signs what an emulator playing the literal rule
// accepts, and what one playing the Go rule refuses, so a mount whose rule
// does not match WeTix's is caught by the first signed mutation; an object
// input with a number is refused with the fix.
func TestSigningLiteralRuleEndToEnd(t *testing.T) {
	vaulttest.RequireLong(t)
	s, emu := setup(t, wetixtest.Options{}, nil)
	key, err := s.Client.Logical().Write("wetix/signing-key", nil)
	if err != nil {
		t.Fatal(err)
	}
	sendPublicKeyToWeTix(t, emu, key.Data["public_key"].(string))
	token, _ := vaulttest.MustReadToken(t, s.Client, "wetix")
	s.MustCLI("write", "wetix/config", "canonical_json=literal")

	resp, err := s.Client.Logical().Write("wetix/sign", map[string]interface{}{"mutation": "createMovieOrder", "input": riskyOrder})
	if err != nil {
		t.Fatal(err)
	}
	sig := signatureArg(t, resp.Data)
	res, err := wetixtest.SendMutation(context.Background(), http.DefaultClient, emu.URL(), token, "createMovieOrder", json.RawMessage(riskyOrder), sig)
	if err != nil || res.Code() != wetixtest.CodeBadSignature {
		t.Fatalf("a literal signature sent to a WeTix verifying the Go way: %v %+v; want %s", err, res.Errors, wetixtest.CodeBadSignature)
	}
	if err := emu.SetCanonicalRule(wetixtest.RuleLiteral); err != nil {
		t.Fatal(err)
	}
	wantAccepted(t, "literal rule, string input", emu, token, "createMovieOrder", riskyOrder, sig)

	status, raw := rawPost(t, s.Addr, "wetix/sign", s.Token, []byte(`{"mutation":"createMovieOrder","input":`+orderJSON+`}`))
	if status != http.StatusBadRequest || !strings.Contains(string(raw), "input.tickets[0].price") || !strings.Contains(string(raw), "JSON string") {
		t.Fatalf("literal rule, object input with 1.50: %d %s; want 400 naming input.tickets[0].price and the fix", status, raw)
	}
	if strings.Contains(string(raw), "leak-canary") {
		t.Fatal("the error quotes the input")
	}
}

// TestSigningHandover: while apps sign continuously, the operator writes a
// next key, sends it to WeTix, and promotes it. No sign fails, every
// signature verifies under the key that was current, no sign started after
// the promote uses the old key, and WeTix accepts before and after.
func TestSigningHandover(t *testing.T) {
	vaulttest.RequireLong(t)
	s, emu := setup(t, wetixtest.Options{}, nil)
	a, err := s.Client.Logical().Write("wetix/signing-key", nil)
	if err != nil {
		t.Fatal(err)
	}
	pubA := publicKeyOf(t, a.Data["public_key"].(string))
	sendPublicKeyToWeTix(t, emu, a.Data["public_key"].(string))
	token, _ := vaulttest.MustReadToken(t, s.Client, "wetix")
	canonical, err := signature.Canonicalize([]byte(orderJSON))
	if err != nil {
		t.Fatal(err)
	}

	var promotedAt atomic.Int64 // unix nanos once the promote returned
	var pubB atomic.Pointer[rsa.PublicKey]
	type result struct {
		started time.Time
		ts      int64
		hash    string
		err     error
	}
	results := make(chan result, 100000)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				started := time.Now()
				resp, err := s.Client.Logical().Write("wetix/sign", map[string]interface{}{"mutation": "createMovieOrder", "input": orderJSON})
				r := result{started: started, err: err}
				if err == nil {
					ts, _ := resp.Data["timestamp"].(json.Number).Int64()
					r.ts, r.hash = ts, resp.Data["hash"].(string)
				}
				results <- r
			}
		}()
	}

	time.Sleep(300 * time.Millisecond)
	sig, _ := s.Client.Logical().Write("wetix/sign", map[string]interface{}{"mutation": "createMovieOrder", "input": orderJSON})
	wantAccepted(t, "before the handover", emu, token, "createMovieOrder", orderJSON, signatureArg(t, sig.Data))

	next, err := s.Client.Logical().Write("wetix/signing-key/next", nil)
	if err != nil {
		t.Fatal(err)
	}
	cur, _ := s.Client.Logical().Read("wetix/signing-key")
	if cur.Data["fingerprint"] != a.Data["fingerprint"] || cur.Data["next_fingerprint"] != next.Data["fingerprint"] {
		t.Fatalf("with a next key waiting, signing-key reads %v", cur.Data)
	}
	pubB.Store(publicKeyOf(t, next.Data["public_key"].(string)))
	time.Sleep(300 * time.Millisecond)
	sendPublicKeyToWeTix(t, emu, next.Data["public_key"].(string))
	if _, err := s.Client.Logical().Write("wetix/signing-key/promote", nil); err != nil {
		t.Fatal(err)
	}
	promotedAt.Store(time.Now().UnixNano())
	time.Sleep(300 * time.Millisecond)
	sig, _ = s.Client.Logical().Write("wetix/sign", map[string]interface{}{"mutation": "createMovieOrder", "input": orderJSON})
	wantAccepted(t, "after the promote", emu, token, "createMovieOrder", orderJSON, signatureArg(t, sig.Data))
	close(stop)
	wg.Wait()
	close(results)

	var byA, byB, n int
	for r := range results {
		n++
		if r.err != nil {
			t.Fatalf("a sign failed during the handover: %v", r.err)
		}
		pt := signature.Plaintext("test-client-id", canonical, "createMovieOrder", r.ts)
		switch {
		case signature.Verify(pubA, pt, r.hash) == nil:
			byA++
			if r.started.UnixNano() > promotedAt.Load() && promotedAt.Load() != 0 {
				t.Errorf("a sign started %s after the promote used the old key", time.Duration(r.started.UnixNano()-promotedAt.Load()))
			}
		case signature.Verify(pubB.Load(), pt, r.hash) == nil:
			byB++
		default:
			t.Errorf("a signature verifies under neither key")
		}
	}
	t.Logf("%d signs during the handover: %d by the old key, %d by the new one, none failed", n, byA, byB)
	if byA == 0 || byB == 0 {
		t.Fatalf("signs by old/new key: %d/%d; want both", byA, byB)
	}

	// Undo, as the README's runbook shows: the old key signs again.
	rb, err := s.Client.Logical().Write("wetix/signing-key/rollback", nil)
	if err != nil || rb.Data["fingerprint"] != a.Data["fingerprint"] || rb.Data["next_fingerprint"] != next.Data["fingerprint"] {
		t.Fatalf("rollback: %v %v", rb, err)
	}
}

// signAppPolicy is the README's app policy: token and sign, no key paths.
const signAppPolicy = `
path "wetix/token" { capabilities = ["read"] }
path "wetix/sign"  { capabilities = ["update"] }
`

// TestSigningPolicy: an app with the README's policy reads tokens and
// signs, and is denied every key path; the denied writes change nothing.
func TestSigningPolicy(t *testing.T) {
	vaulttest.RequireLong(t)
	s, emu := setup(t, wetixtest.Options{}, nil)
	k, err := s.Client.Logical().Write("wetix/signing-key", nil)
	if err != nil {
		t.Fatal(err)
	}
	sendPublicKeyToWeTix(t, emu, k.Data["public_key"].(string))
	app := appClient(t, s, "wetix-app", signAppPolicy)

	token, _ := vaulttest.MustReadToken(t, app, "wetix")
	resp, err := app.Logical().Write("wetix/sign", map[string]interface{}{"mutation": "createMovieOrder", "input": orderJSON})
	if err != nil {
		t.Fatal(err)
	}
	wantAccepted(t, "app sign", emu, token, "createMovieOrder", orderJSON, signatureArg(t, resp.Data))

	_, err = app.Logical().Read("wetix/signing-key")
	wantDenied(t, "read wetix/signing-key", err)
	for _, p := range []string{"wetix/signing-key", "wetix/signing-key/next", "wetix/signing-key/promote", "wetix/signing-key/rollback"} {
		_, err = app.Logical().Write(p, map[string]interface{}{})
		wantDenied(t, "write "+p, err)
	}
	_, err = app.Logical().Delete("wetix/signing-key")
	wantDenied(t, "delete wetix/signing-key", err)
	after, _ := s.Client.Logical().Read("wetix/signing-key")
	if after.Data["fingerprint"] != k.Data["fingerprint"] || after.Data["next_fingerprint"] != "" {
		t.Fatalf("denied writes changed the keys: %v", after.Data)
	}
}

// TestSigningNoLeak: with a file audit device and trace logging, an
// imported private key, the order's customer data and the plaintext appear
// in neither Vault's log (which carries the plugin's) nor the audit log.
func TestSigningNoLeak(t *testing.T) {
	vaulttest.RequireLong(t)
	s, _ := vaulttest.StartWithPlugin(t, vaulttest.Options{LogLevel: "trace"})
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	if err := s.Client.Sys().EnableAuditWithOptions("file", &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": auditPath}}); err != nil {
		t.Fatal(err)
	}
	s.Mount("wetix", vaulttest.PluginVersion)
	emu := newEmulator(t, wetixtest.Options{})
	vaulttest.Configure(t, s.Client, "wetix", emu, nil)

	keyText, _ := signaturetest.Key(t)
	keyPEM := []byte(keyText)
	if _, err := s.Client.Logical().Write("wetix/signing-key/next", map[string]interface{}{"private_key": string(keyPEM)}); err != nil {
		t.Fatal(err)
	}
	s.Client.Logical().Write("wetix/signing-key/promote", nil)
	resp, err := s.Client.Logical().Write("wetix/sign", map[string]interface{}{"mutation": "createMovieOrder", "input": orderJSON, "include_plaintext": true})
	if err != nil {
		t.Fatal(err)
	}
	plaintext := resp.Data["plaintext"].(string)
	// Failures log too: make some.
	s.Client.Logical().Write("wetix/sign", map[string]interface{}{"mutation": "createMovieOrder", "input": orderJSON[:40]})
	s.Client.Logical().Write("wetix/signing-key", map[string]interface{}{"private_key": string(keyPEM[:200])})

	block, _ := pem.Decode(keyPEM)
	parsed, _ := x509.ParsePKCS1PrivateKey(block.Bytes)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(parsed)
	stored := base64.StdEncoding.EncodeToString(pkcs8) // the form kept in storage
	lines := strings.Split(strings.TrimSpace(string(keyPEM)), "\n")
	canaries := map[string]string{
		"private key PEM line": lines[len(lines)/2],
		"stored private key":   stored[200:260],
		"customer email":       "leak-canary-customer@example.com",
		"plaintext":            plaintext[:60],
		"base64 input":         plaintext[len("clientId=test-client-id&data=") : len("clientId=test-client-id&data=")+40],
	}
	audit, err := os.ReadFile(auditPath)
	if err != nil || len(audit) == 0 {
		t.Fatalf("audit log: %v (%d bytes)", err, len(audit))
	}
	for name, text := range map[string]string{"vault log": s.Log(), "audit log": string(audit)} {
		for what, c := range canaries {
			if strings.Contains(text, c) {
				t.Errorf("the %s contains the %s", name, what)
			}
		}
	}
	if !strings.Contains(string(audit), `"path":"wetix/sign"`) {
		t.Fatal("the audit log did not record the sign requests; the scan proves nothing")
	}
}
