package acceptance

// Tests from the review of the signing feature (issue 10,
// /work/notes/review-signing.md), through a real Vault.

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature/signaturetest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// TestSigningObjectIntegralFloat (review finding 4, revisited by issue 16)
// Scenario: an app (Python: json.dumps({"price": 12.0}) writes 12.0) sends
// its input as a JSON object in the request body, with a whole number
// written with a fraction or an exponent: "price": 12.0, "quantity": 1e0.
// Vault's plugin hop turns them into float64 12 and 1. Under the v0.1 rule
// WeTix was assumed to verify over the app's text (12.0), so the engine
// refused such input; under the Go rule (the default) WeTix's server reads
// 12.0 as the float64 12 too, so the engine signs "price":12 and WeTix
// accepts the app's own text.
// Expected: accepted by the emulator verifying the Go way; with
// canonical_json=literal, a 400 naming the number's path and the fix (send
// input as a JSON string), and the same input sent as a string is signed
// and accepted by an emulator verifying the literal way.
func TestSigningObjectIntegralFloat(t *testing.T) {
	vaulttest.RequireLong(t)
	s, emu := setup(t, wetixtest.Options{}, nil)
	gen, err := s.Client.Logical().Write("wetix/signing-key", nil)
	if err != nil {
		t.Fatal(err)
	}
	sendPublicKeyToWeTix(t, emu, gen.Data["public_key"].(string))
	token, _ := vaulttest.MustReadToken(t, s.Client, "wetix")

	inputs := map[string]string{
		`{"referenceId":"r-1","tickets":[{"key":"k","quantity":1,"price":12.0}]}`: "input.tickets[0].price",
		`{"referenceId":"r-2","tickets":[{"key":"k","quantity":1e0}]}`:            "input.tickets[0].quantity",
	}
	send := func(what, input string, data []byte) {
		t.Helper()
		res, err := wetixtest.SendMutation(context.Background(), http.DefaultClient, emu.URL(), token, "createMovieOrder", json.RawMessage(input), data)
		if err != nil {
			t.Fatal(err)
		}
		if res.Code() != "" {
			t.Errorf("%s %s: WeTix refuses the app's mutation: %+v", what, input, res.Errors)
		}
	}
	for input := range inputs {
		status, raw := rawPost(t, s.Addr, "wetix/sign", s.Token, []byte(`{"mutation":"createMovieOrder","input":`+input+`}`))
		var resp struct {
			Data json.RawMessage `json:"data"`
		}
		mustJSON(t, raw, &resp)
		if status != http.StatusOK {
			t.Fatalf("go rule, object input %s: %d %s", input, status, raw)
		}
		send("go rule, object input", input, resp.Data)
	}

	s.MustCLI("write", "wetix/config", "canonical_json=literal")
	if err := emu.SetCanonicalRule(wetixtest.RuleLiteral); err != nil {
		t.Fatal(err)
	}
	for input, path := range inputs {
		body := []byte(`{"mutation":"createMovieOrder","input":` + input + `}`)
		status, raw := rawPost(t, s.Addr, "wetix/sign", s.Token, body)
		if status != http.StatusBadRequest || !strings.Contains(string(raw), path) || !strings.Contains(string(raw), "Send input as a JSON string") {
			t.Errorf("literal rule, object input %s: %d %s; want 400 naming %s and saying to send input as a JSON string", input, status, raw, path)
		}

		// The fix the error names works: the same input as a string.
		sec, err := s.Client.Logical().Write("wetix/sign", map[string]interface{}{"mutation": "createMovieOrder", "input": input})
		if err != nil {
			t.Fatal(err)
		}
		sig, _ := json.Marshal(sec.Data)
		send("literal rule, string input", input, sig)
	}
}

// TestReviewPrivateKeyNotEchoedOnTypeError
// Scenario: an operator's tooling sends private_key as the PEM's lines (a
// JSON array, as YAML/Terraform users do with multi-line values) or wrapped
// in an object. signing-key has an ExistenceCheck, so Vault first asks the
// plugin for it; the SDK validates the fields there (framework
// HandleExistenceCheck -> FieldData.Validate), and the conversion error ends
// in "value: '<the whole value>'". Vault logs that error at ERROR level
// ("core: failed to run existence check") and writes it, in clear, to the
// audit log's top-level "error", and returns it to the caller.
// Expected (standards: never log, return or put in an error a private key
// or client secret; README: "The private key is never returned, logged or
// exported"): a refusal that names the field and says to send one string,
// with no key material in the answer, Vault's log or the audit log.
// Observed: all three hold the private key (same for config's
// client_secret, which has the same existence check).
func TestNonStringSecretsAreNeverEchoed(t *testing.T) {
	vaulttest.RequireLong(t)
	s, _ := vaulttest.StartWithPlugin(t, vaulttest.Options{LogLevel: "info"})
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	if err := s.Client.Sys().EnableAuditWithOptions("file", &api.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": auditPath}}); err != nil {
		t.Fatal(err)
	}
	s.Mount("wetix", vaulttest.PluginVersion)

	keyText, _ := signaturetest.Key(t)
	lines := strings.Split(strings.TrimSpace(keyText), "\n")
	canaries := map[string]string{"private key": lines[len(lines)/2], "client secret": "review-canary-client-secret-9f3k"}
	var asList []interface{}
	for _, l := range lines {
		asList = append(asList, l)
	}
	for _, c := range []struct {
		name, path string
		data       map[string]interface{}
	}{
		{"private_key as lines", "wetix/signing-key", map[string]interface{}{"private_key": asList}},
		{"private_key in an object", "wetix/signing-key/next", map[string]interface{}{"private_key": map[string]interface{}{"pem": keyText}}},
		{"client_secret as a list", "wetix/config", map[string]interface{}{"client_id": "c", "client_secret": []interface{}{canaries["client secret"]}}},
	} {
		body, _ := json.Marshal(c.data)
		status, raw := rawPost(t, s.Addr, c.path, s.Token, body)
		if status != http.StatusBadRequest {
			t.Errorf("%s: status %d; want 400", c.name, status)
		}
		for what, canary := range canaries {
			if strings.Contains(strings.ReplaceAll(string(raw), `\\n`, "\n"), canary) {
				t.Errorf("%s: the error answer quotes the %s", c.name, what)
			}
		}
	}
	audit, _ := os.ReadFile(auditPath)
	for what, canary := range canaries {
		if strings.Contains(string(audit), canary) {
			t.Errorf("the audit log holds the %s in clear", what)
		}
		if strings.Contains(s.Log(), canary) {
			t.Errorf("Vault's log (level info) holds the %s", what)
		}
	}
}
