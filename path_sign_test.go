package wetix

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature/signaturetest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature"
)

// signHarness is a configured mount (client ID "client-1") holding the
// golden vectors' test key.
func signHarness(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t)
	h.configure(nil)
	pemText, _ := testSigningKeyPEM(t)
	h.mustWrite("signing-key", map[string]interface{}{"private_key": pemText})
	return h
}

// TestSignGoldenVectors: through the path, each vector signed with the
// configured client ID gives the committed plaintext and signature.
func TestSignGoldenVectors(t *testing.T) {
	h := signHarness(t)
	n := 0
	for _, v := range signaturetest.Vectors(t) {
		if v.ClientID != "client-1" || v.Timestamp <= 0 {
			continue
		}
		n++
		rule := v.Rule
		if rule == "" {
			rule = "go"
		}
		h.mustWrite("config", map[string]interface{}{"canonical_json": rule})
		resp := h.mustWrite("sign", map[string]interface{}{"mutation": v.Mutation, "input": v.Input, "timestamp": v.Timestamp, "include_plaintext": true})
		if resp.Data["hash"] != v.Signature || resp.Data["plaintext"] != v.Plaintext {
			t.Errorf("%s: got %v", v.Name, resp.Data)
		}
		if resp.Data["algorithm"] != "SHA256" || resp.Data["timestamp"] != v.Timestamp {
			t.Errorf("%s: algorithm/timestamp = %v/%v", v.Name, resp.Data["algorithm"], resp.Data["timestamp"])
		}
	}
	if n < 8 {
		t.Fatalf("only %d vectors ran", n)
	}
}

// TestSignResponseIsTheSignatureArgument: by default the answer is exactly
// the three fields of WeTix's SignatureInput, so an app can embed it as is,
// and the timestamp is Vault's clock.
func TestSignResponseIsTheSignatureArgument(t *testing.T) {
	h := signHarness(t)
	resp := h.mustWrite("sign", map[string]interface{}{"mutation": "createMovieOrder", "input": `{"referenceId":"123"}`})
	var keys []string
	for k := range resp.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "algorithm,hash,timestamp" {
		t.Fatalf("fields %v; want algorithm, hash, timestamp only (no plaintext unless asked)", keys)
	}
	if resp.Data["timestamp"] != h.clock.Now().Unix() {
		t.Fatalf("timestamp %v, want Vault's clock %d", resp.Data["timestamp"], h.clock.Now().Unix())
	}
	if len(resp.Warnings) != 0 {
		t.Fatalf("warnings: %v", resp.Warnings)
	}
	_, key := testSigningKeyPEM(t)
	pt := signature.Plaintext("client-1", []byte(`{"referenceId":"123"}`), "createMovieOrder", h.clock.Now().Unix())
	if err := signature.Verify(&key.PublicKey, pt, resp.Data["hash"].(string)); err != nil {
		t.Fatal("hash does not verify over the expected plaintext")
	}
}

// TestSignObjectInput: under the default rule an object in the request
// body signs exactly like the same JSON sent as a string, numbers included,
// whatever Go type a number arrives as (from an external plugin's gRPC hop
// float64, in process json.Number). Under the literal rule an object holding
// any number is refused with the fix (send a string): its text is lost.
func TestSignObjectInput(t *testing.T) {
	h := signHarness(t)
	objects := 0
	for _, v := range signaturetest.Vectors(t) {
		if v.ClientID != "client-1" || v.Timestamp <= 0 || v.Rule != "" {
			continue
		}
		var asNumber, asFloat interface{}
		dec := json.NewDecoder(strings.NewReader(v.Input))
		dec.UseNumber()
		if err := dec.Decode(&asNumber); err != nil {
			t.Fatal(err)
		}
		json.Unmarshal([]byte(v.Input), &asFloat)
		for name, in := range map[string]interface{}{"json.Number": asNumber, "float64": asFloat} {
			resp := h.mustWrite("sign", map[string]interface{}{"mutation": v.Mutation, "input": in, "timestamp": v.Timestamp})
			if resp.Data["hash"] != v.Signature {
				t.Errorf("%s as an object (%s): signs differently from the string", v.Name, name)
			}
			objects++
		}
	}
	if objects < 8 {
		t.Fatalf("only %d object inputs signed", objects)
	}

	h.mustWrite("config", map[string]interface{}{"canonical_json": "literal"})
	withNumbers := signaturetest.Named(t, "nested-objects-in-arrays-sorted")
	var asFloat interface{}
	json.Unmarshal([]byte(withNumbers.Input), &asFloat)
	msg := h.wantRefused(logical.UpdateOperation, "sign", map[string]interface{}{"mutation": withNumbers.Mutation, "input": asFloat},
		"input.z[", "JSON string", "input=@order.json", "canonical_json")
	if !strings.Contains(msg, "Send input as a JSON string") {
		t.Errorf("the error does not say to send input as a JSON string: %s", msg)
	}
	for _, n := range []interface{}{float64(12), 1.5, json.Number("12.0"), 1} {
		h.wantRefused(logical.UpdateOperation, "sign",
			map[string]interface{}{"mutation": "createMovieOrder", "input": map[string]interface{}{"tickets": []interface{}{map[string]interface{}{"price": n}}}},
			"input.tickets[0].price", "JSON string", "input=@order.json")
	}
	lit := signaturetest.Named(t, "literal-strings-no-html-escapes-utf8-raw")
	var obj interface{}
	json.Unmarshal([]byte(lit.Input), &obj)
	if resp := h.mustWrite("sign", map[string]interface{}{"mutation": lit.Mutation, "input": obj, "timestamp": lit.Timestamp}); resp.Data["hash"] != lit.Signature {
		t.Error("literal rule: an object input without numbers signs differently from the string")
	}
}

// TestSignLargeIntegerWarning: an integer float64 cannot hold is signed as
// WeTix's server reads it, and the answer says so, naming its path.
func TestSignLargeIntegerWarning(t *testing.T) {
	h := signHarness(t)
	resp := h.mustWrite("sign", map[string]interface{}{"mutation": "createMovieOrder", "input": `{"tickets":[{"id":12345678901234567890}]}`, "include_plaintext": true})
	if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "input.tickets[0].id") || !strings.Contains(resp.Warnings[0], "12345678901234567000") {
		t.Fatalf("warnings %q; want one naming input.tickets[0].id and what was signed", resp.Warnings)
	}
}

// TestConfigCanonicalJSON: the rule is stored, read back, defaults to go,
// refuses an unknown value naming the field, and changing it keeps the
// credentials' tokens (it is not a credential).
func TestConfigCanonicalJSON(t *testing.T) {
	h := signHarness(t)
	if got := h.readData("config")["canonical_json"]; got != "go" {
		t.Fatalf("default canonical_json = %v", got)
	}
	h.wantRefused(logical.UpdateOperation, "config", map[string]interface{}{"canonical_json": "js"}, "canonical_json", `"go"`, `"literal"`)
	if got := h.readData("config")["canonical_json"]; got != "go" {
		t.Fatalf("a refused write changed canonical_json to %v", got)
	}
	h.mustWrite("config", map[string]interface{}{"canonical_json": "Literal"})
	if got := h.readData("config")["canonical_json"]; got != "literal" {
		t.Fatalf("canonical_json = %v after writing literal", got)
	}
	resp := h.mustWrite("sign", map[string]interface{}{"mutation": "createMovieOrder", "input": `{"a":"x&y"}`, "include_plaintext": true})
	if want := signature.Plaintext("client-1", []byte(`{"a":"x&y"}`), "createMovieOrder", resp.Data["timestamp"].(int64)); resp.Data["plaintext"] != string(want) {
		t.Fatalf("literal rule plaintext %v", resp.Data["plaintext"])
	}
}

func TestSignRefused(t *testing.T) {
	h := signHarness(t)
	in := `{"referenceId":"123"}`
	big := `{"k":"` + strings.Repeat("x", maxSignInputBytes) + `"}`
	bigObj := map[string]interface{}{"k": strings.Repeat("x", maxSignInputBytes)}
	for _, c := range []struct {
		name  string
		data  map[string]interface{}
		wants []string
	}{
		{"no-mutation", map[string]interface{}{"input": in}, []string{"mutation is required", "createMovieOrder"}},
		{"unknown-mutation", map[string]interface{}{"mutation": "cancelMovieOrder", "input": in}, []string{`mutation "cancelMovieOrder"`, "confirmMovieOrder"}},
		{"wrong-case", map[string]interface{}{"mutation": "CreateMovieOrder", "input": in}, []string{"case-sensitive"}},
		{"no-input", map[string]interface{}{"mutation": "createMovieOrder"}, []string{"input is required"}},
		{"input-array", map[string]interface{}{"mutation": "createMovieOrder", "input": []interface{}{1}}, []string{"input must be a JSON object", "not an array"}},
		{"input-number", map[string]interface{}{"mutation": "createMovieOrder", "input": json.Number("1")}, []string{"input must be a JSON object"}},
		{"input-string-array", map[string]interface{}{"mutation": "createMovieOrder", "input": `[1]`}, []string{"input must be a JSON object"}},
		{"input-not-json", map[string]interface{}{"mutation": "createMovieOrder", "input": `{referenceId: 123}`}, []string{"input is not valid JSON"}},
		{"input-duplicate", map[string]interface{}{"mutation": "createMovieOrder", "input": `{"a":1,"a":2}`}, []string{`key "a" twice`}},
		{"input-too-big", map[string]interface{}{"mutation": "createMovieOrder", "input": big}, []string{"input is", "at most 65536"}},
		{"input-object-too-big", map[string]interface{}{"mutation": "createMovieOrder", "input": bigObj}, []string{"input is", "at most 65536"}},
		{"timestamp-zero", map[string]interface{}{"mutation": "createMovieOrder", "input": in, "timestamp": 0}, []string{"timestamp must be unix seconds"}},
		{"timestamp-negative", map[string]interface{}{"mutation": "createMovieOrder", "input": in, "timestamp": -5}, []string{"timestamp must be unix seconds"}},
		{"timestamp-ms", map[string]interface{}{"mutation": "createMovieOrder", "input": in, "timestamp": h.clock.Now().UnixMilli()}, []string{"milliseconds"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h.t = t
			h.wantRefused(logical.UpdateOperation, "sign", c.data, c.wants...)
		})
	}
}

func TestSignNeedsConfigAndKey(t *testing.T) {
	h := newHarness(t)
	req := map[string]interface{}{"mutation": "createMovieOrder", "input": `{}`}
	h.mustWrite("signing-key", nil)
	h.wantRefused(logical.UpdateOperation, "sign", req, "client ID is not configured", "vault write <mount>/config")
	h.configure(nil)
	h.request(logical.DeleteOperation, "signing-key", nil)
	h.wantRefused(logical.UpdateOperation, "sign", req, "no signing key")
}

// TestSignTimestampGiven: a caller's timestamp is signed as given; one far
// from Vault's clock gets a warning, and an unknown field is refused.
func TestSignTimestampGiven(t *testing.T) {
	h := signHarness(t)
	ts := h.clock.Now().Add(-time.Hour).Unix()
	h.wantRefused(logical.UpdateOperation, "sign", map[string]interface{}{"mutation": "createMovieOrder", "input": `{}`, "signature": "x"}, "unknown field(s) signature", "input, mutation")
	resp := h.mustWrite("sign", map[string]interface{}{"mutation": "createMovieOrder", "input": `{}`, "timestamp": ts})
	if resp.Data["timestamp"] != ts {
		t.Fatalf("timestamp %v, want %d", resp.Data["timestamp"], ts)
	}
	w := strings.Join(resp.Warnings, "\n")
	if !strings.Contains(w, "1h0m0s away from Vault's clock") {
		t.Fatalf("warnings: %q", w)
	}
	near := h.mustWrite("sign", map[string]interface{}{"mutation": "createMovieOrder", "input": `{}`, "timestamp": h.clock.Now().Unix() - 60})
	if len(near.Warnings) != 0 {
		t.Fatalf("warnings for a timestamp a minute old: %v", near.Warnings)
	}
}

// TestSignNeverLogsInput: neither the customer data nor the plaintext
// reaches the plugin's log, even at trace level and on errors.
func TestSignNeverLogsInput(t *testing.T) {
	h := signHarness(t)
	secret := "harith.secret.customer@example.com"
	h.mustWrite("sign", map[string]interface{}{"mutation": "createMovieOrder", "input": `{"customer":{"email":"` + secret + `"}}`, "include_plaintext": true})
	h.request(logical.UpdateOperation, "sign", map[string]interface{}{"mutation": "createMovieOrder", "input": `{"customer":{"email":"` + secret + `"`})
	h.request(logical.UpdateOperation, "sign", map[string]interface{}{"mutation": "nope", "input": `{"customer":{"email":"` + secret + `"}}`})
	if strings.Contains(h.logs.String(), secret) || strings.Contains(h.logs.String(), "clientId=") {
		t.Fatal("the input or the plaintext was logged")
	}
	resp, _ := h.request(logical.UpdateOperation, "sign", map[string]interface{}{"mutation": "createMovieOrder", "input": `{"customer":{"email":"` + secret + `",}}`})
	if strings.Contains(resp.Error().Error(), secret) {
		t.Fatal("an error quotes the input")
	}
}

// BenchmarkSignPath is one sign through the backend (no Vault, no gRPC);
// BenchmarkSignRSAOnly is the RSA operation alone: the difference is what
// the engine adds (canonical JSON, plaintext, base64), and should be small.
func BenchmarkSignPath(b *testing.B) {
	bb := newBenchBackend(b)
	raw, _ := signaturetest.Key(b)
	req := &logical.Request{Operation: logical.UpdateOperation, Path: "signing-key", Storage: bb.storage, Data: map[string]interface{}{"private_key": string(raw)}}
	if resp, err := bb.b.HandleRequest(context.Background(), req); err != nil || resp.IsError() {
		b.Fatal(resp, err)
	}
	in := `{"sessionKey":"EhFNb3ZpZU9yZGVyU2Vzc2lvbiIb","referenceId":"123","customer":{"externalId":null,"email":"a@b.c","countryCode":"60","phoneNo":"167385346"},"tickets":[{"key":"U_-HAwEBCUdvYlRpY2tldAH_iAABBQECSUQBDAABBE5hbWUBDAABCEFyZWFDb2RlAQwAAQZBbW91bnQBBgABD1NlYXRzQWxsb2NhdGlvbgEGAAAAGv-IAQVBZHVsdAEFQURVTFQBATEB_g-gAQEA","quantity":1}],"concessions":null,"bundles":null,"promoCode":null}`
	req = &logical.Request{Operation: logical.UpdateOperation, Path: "sign", Storage: bb.storage}
	b.ReportAllocs()
	for b.Loop() {
		req.Data = map[string]interface{}{"mutation": "createMovieOrder", "input": in}
		resp, err := bb.b.HandleRequest(context.Background(), req)
		if err != nil || resp.IsError() {
			b.Fatal(resp, err)
		}
	}
}

func BenchmarkSignRSAOnly(b *testing.B) {
	_, key := signaturetest.Key(b)
	digest := sha256.Sum256([]byte("clientId=client-1&data=e30=&mutation=createMovieOrder&shaType=SHA256&timestamp=1"))
	for b.Loop() {
		if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:]); err != nil {
			b.Fatal(err)
		}
	}
}
