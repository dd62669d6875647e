package wetixtest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature/signaturetest"
)

func testRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	_, k := signaturetest.Key(t)
	return k
}

func publicPEM(t *testing.T, k *rsa.PrivateKey) string { return signaturetest.PublicPEM(t, k) }

// signFor signs input as an app would with Vault's answer under the
// emulator's default rule. The signed bytes come from the golden vectors'
// canonical forms or from canonicalOf below, never from package signature's
// canonicalizer: the emulator is what checks that one.
func signFor(t *testing.T, k *rsa.PrivateKey, clientID, mutation, input string, ts int64) json.RawMessage {
	t.Helper()
	return signCanonical(t, k, clientID, mutation, canonicalOf(t, input), ts)
}

func signCanonical(t *testing.T, k *rsa.PrivateKey, clientID, mutation, canonical string, ts int64) json.RawMessage {
	t.Helper()
	sig, _, err := signature.SignInput(k, clientID, mutation, []byte(canonical), ts)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(sig)
	return raw
}

// canonicalOf knows the canonical forms the tests sign, written out by hand.
func canonicalOf(t *testing.T, input string) string {
	t.Helper()
	switch input {
	case orderInput:
		return orderCanonical
	}
	t.Fatalf("no hand-written canonical form for %s", input)
	return ""
}

const orderInput = `{"sessionKey":"s-1","referenceId":"123","customer":{"externalId":null,"email":"a@b.c","countryCode":"60","phoneNo":"167385346"},"tickets":[{"key":"k","quantity":1,"price":1.50}],"concessions":null,"bundles":null,"promoCode":null}`

// orderCanonical is orderInput sorted and minified, its 1.50 read as a float64.
const orderCanonical = `{"bundles":null,"concessions":null,"customer":{"countryCode":"60","email":"a@b.c","externalId":null,"phoneNo":"167385346"},"promoCode":null,"referenceId":"123","sessionKey":"s-1","tickets":[{"key":"k","price":1.5,"quantity":1}]}`

type gqlRig struct {
	s   *Server
	c   *http.Client
	tok string
	key *rsa.PrivateKey
	now func() time.Time
}

func newGQLRig(t *testing.T) *gqlRig {
	t.Helper()
	clock := NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	s, c := start(t, Options{Now: clock.Now})
	tok := mustIssue(t, c, s, ccRequest()).AccessToken
	key := testRSAKey(t)
	if st, body := admin(t, c, s, http.MethodPut, "signing-public-key", mustJSON(map[string]string{"public_key": publicPEM(t, key)})); st != http.StatusNoContent {
		t.Fatalf("registering the key: %d %s", st, body)
	}
	return &gqlRig{s: s, c: c, tok: tok, key: key, now: clock.Now}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func (r *gqlRig) send(t *testing.T, tok, mutation, input string, sig json.RawMessage) MutationResult {
	t.Helper()
	res, err := SendMutation(context.Background(), r.c, r.s.URL(), tok, mutation, json.RawMessage(input), sig)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestGraphQLAcceptsSignedMutations: both mutations, signed over the exact
// input text with the registered key and the client's ID, are accepted.
func TestGraphQLAcceptsSignedMutations(t *testing.T) {
	r := newGQLRig(t)
	for _, m := range []string{"createMovieOrder", "confirmMovieOrder"} {
		sig := signFor(t, r.key, r.s.opts.ClientID, m, orderInput, r.now().Unix())
		res := r.send(t, r.tok, m, orderInput, sig)
		if res.Status != http.StatusOK || res.Code() != "" || !strings.Contains(string(res.Data[m]), `"referenceId":"123"`) {
			t.Fatalf("%s: %+v", m, res)
		}
	}
	acc, ref := r.s.SignedMutations()
	if acc["createMovieOrder"] != 1 || acc["confirmMovieOrder"] != 1 || len(ref) != 0 {
		t.Fatalf("accepted %v refused %v", acc, ref)
	}
}

func TestGraphQLRefuses(t *testing.T) {
	r := newGQLRig(t)
	id := r.s.opts.ClientID
	now := r.now().Unix()
	good := signFor(t, r.key, id, "createMovieOrder", orderInput, now)
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, c := range []struct {
		name, tok, mutation, input string
		sig                        json.RawMessage
		status                     int
		code                       string
	}{
		{"no-token", "", "createMovieOrder", orderInput, good, 401, CodeUnauthenticated},
		{"bad-token", r.tok + "x", "createMovieOrder", orderInput, good, 401, CodeUnauthenticated},
		{"other-key", r.tok, "createMovieOrder", orderInput, signFor(t, other, id, "createMovieOrder", orderInput, now), 200, CodeBadSignature},
		{"other-client-id", r.tok, "createMovieOrder", orderInput, signFor(t, r.key, "someone-else", "createMovieOrder", orderInput, now), 200, CodeBadSignature},
		{"other-mutation", r.tok, "confirmMovieOrder", orderInput, good, 200, CodeBadSignature},
		{"tampered-input", r.tok, "createMovieOrder", strings.Replace(orderInput, `"quantity":1`, `"quantity":2`, 1), good, 200, CodeBadSignature},
		// Signed over the text as sent, not as Go re-encodes it.
		{"signed-unsorted-text", r.tok, "createMovieOrder", orderInput, signCanonical(t, r.key, id, "createMovieOrder", orderInput, now), 200, CodeBadSignature},
		{"stale", r.tok, "createMovieOrder", orderInput, signFor(t, r.key, id, "createMovieOrder", orderInput, now-6*60), 200, CodeStaleTimestamp},
		{"future", r.tok, "createMovieOrder", orderInput, signFor(t, r.key, id, "createMovieOrder", orderInput, now+6*60), 200, CodeStaleTimestamp},
		{"wrong-algorithm", r.tok, "createMovieOrder", orderInput, json.RawMessage(strings.Replace(string(good), "SHA256", "SHA1", 1)), 200, CodeBadSignature},
		{"no-hash", r.tok, "createMovieOrder", orderInput, json.RawMessage(`{"algorithm":"SHA256","timestamp":1}`), 200, CodeBadRequest},
		{"no-signature", r.tok, "createMovieOrder", orderInput, json.RawMessage(`null`), 200, CodeBadRequest},
	} {
		res := r.send(t, c.tok, c.mutation, c.input, c.sig)
		if res.Status != c.status || res.Code() != c.code || res.Data[c.mutation] != nil && string(res.Data[c.mutation]) != "null" {
			t.Errorf("%s: got %d %+v; want %d %s", c.name, res.Status, res.Errors, c.status, c.code)
		}
	}
	if acc, _ := r.s.SignedMutations(); len(acc) != 0 {
		t.Fatalf("accepted %v", acc)
	}
	// Still accepted at the edge of the window.
	if res := r.send(t, r.tok, "createMovieOrder", orderInput, signFor(t, r.key, id, "createMovieOrder", orderInput, now-5*60)); res.Code() != "" {
		t.Fatalf("a signature 5 minutes old was refused: %+v", res.Errors)
	}
}

// TestGraphQLOneKeyPerClient: as at WeTix, registering a new key replaces
// the old one; without any key every signature is refused.
func TestGraphQLOneKeyPerClient(t *testing.T) {
	r := newGQLRig(t)
	now := r.now().Unix()
	oldSig := signFor(t, r.key, r.s.opts.ClientID, "createMovieOrder", orderInput, now)
	next, _ := rsa.GenerateKey(rand.Reader, 2048)
	if err := r.s.SetSigningPublicKey(publicPEM(t, next)); err != nil {
		t.Fatal(err)
	}
	if res := r.send(t, r.tok, "createMovieOrder", orderInput, oldSig); res.Code() != CodeBadSignature {
		t.Fatalf("the replaced key still verifies: %+v", res)
	}
	if res := r.send(t, r.tok, "createMovieOrder", orderInput, signFor(t, next, r.s.opts.ClientID, "createMovieOrder", orderInput, now)); res.Code() != "" {
		t.Fatalf("the new key does not verify: %+v", res)
	}
	if st, _ := admin(t, r.c, r.s, http.MethodDelete, "signing-public-key", ""); st != http.StatusNoContent {
		t.Fatal(st)
	}
	if res := r.send(t, r.tok, "createMovieOrder", orderInput, oldSig); res.Code() != CodeNoPublicKey {
		t.Fatalf("without a key: %+v", res)
	}
}

func TestGraphQLAdminSigningKey(t *testing.T) {
	s, c := start(t, Options{})
	if st, _ := admin(t, c, s, http.MethodGet, "signing-public-key", ""); st != http.StatusNotFound {
		t.Fatalf("GET before any key: %d", st)
	}
	priv := testRSAKey(t)
	privPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)}))
	for _, bad := range []string{``, `{}`, `{"public_key":""}`, `{"public_key":"nope"}`, `{"publicKey":"x"}`, mustJSON(map[string]string{"public_key": privPEM})} {
		if st, _ := admin(t, c, s, http.MethodPut, "signing-public-key", bad); st != http.StatusBadRequest {
			t.Errorf("PUT %.30q: %d, want 400", bad, st)
		}
	}
	pub := publicPEM(t, priv)
	admin(t, c, s, http.MethodPut, "signing-public-key", mustJSON(map[string]string{"public_key": pub}))
	st, body := admin(t, c, s, http.MethodGet, "signing-public-key", "")
	var got map[string]string
	json.Unmarshal(body, &got)
	if st != http.StatusOK || got["public_key"] != pub {
		t.Fatalf("GET: %d %s", st, body)
	}
}

func TestGraphQLRequestShape(t *testing.T) {
	r := newGQLRig(t)
	post := func(method, body string) (int, string) {
		req, _ := http.NewRequest(method, r.s.URL()+"/graphql", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+r.tok)
		resp, err := r.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Errors []GraphQLError }
		json.NewDecoder(resp.Body).Decode(&out)
		code := ""
		if len(out.Errors) > 0 {
			code = out.Errors[0].Extensions["code"]
		}
		return resp.StatusCode, code
	}
	for _, c := range []struct {
		method, body string
		status       int
	}{
		{http.MethodGet, "", 405},
		{http.MethodPost, "not json", 400},
		{http.MethodPost, `{"query":"query { me { id } }"}`, 200},
		{http.MethodPost, `{"query":"mutation { createMovieOrder(input: {}) { id } confirmMovieOrder(input: {}) { id } }"}`, 200},
		{http.MethodPost, `{"query":"mutation { createMovieOrder(input: {referenceId: \"1\"}) { id } }"}`, 200},
	} {
		if st, code := post(c.method, c.body); st != c.status || code != CodeBadRequest {
			t.Errorf("%s %.40q: %d %s; want %d %s", c.method, c.body, st, code, c.status, CodeBadRequest)
		}
	}
}

// TestRebuildAgreesWithGoldenVectors: the emulator's rebuild of each golden
// input, written independently of package signature, gives the vector's
// canonical bytes under the vector's rule. Two implementations agreeing on
// bytes checked into the repository is what lets the signing tests fail.
func TestRebuildAgreesWithGoldenVectors(t *testing.T) {
	rules := map[string]int{}
	for _, v := range signaturetest.Vectors(t) {
		rule := RuleGo
		if v.Rule == "literal" {
			rule = RuleLiteral
		}
		got, err := rule.rebuild(json.RawMessage(v.Input))
		if err != nil || string(got) != v.Canonical {
			t.Errorf("%s (%s): emulator rebuilds %s, %v; the vector says %s", v.Name, rule, got, err, v.Canonical)
		}
		rules[string(rule)]++
	}
	if rules["go"] < 5 || rules["literal"] < 2 {
		t.Fatalf("vectors per rule %v: too few to prove anything", rules)
	}
}

// TestCanonicalRuleModes: an input with & < > U+2028 and a decimal signed
// over Go's re-encoding is accepted by the default emulator and refused by
// one playing the literal rule, and the literal signature the other way
// round; a same-valued input with other number text is told apart only by
// the literal rule.
func TestCanonicalRuleModes(t *testing.T) {
	r := newGQLRig(t)
	id, now := r.s.opts.ClientID, r.now().Unix()
	const input = `{"referenceId":"a&b<c>","note":"x\u2028y","amount":12.50}`
	const goBytes = `{"amount":12.5,"note":"x\u2028y","referenceId":"a\u0026b\u003cc\u003e"}`
	const literalBytes = `{"amount":12.50,"note":"x` + "\u2028" + `y","referenceId":"a&b<c>"}`
	goSig := signCanonical(t, r.key, id, "createMovieOrder", goBytes, now)
	litSig := signCanonical(t, r.key, id, "createMovieOrder", literalBytes, now)
	for _, c := range []struct {
		rule        CanonicalRule
		sig         json.RawMessage
		input, want string
	}{
		{RuleGo, goSig, input, ""},
		{RuleGo, litSig, input, CodeBadSignature},
		{RuleGo, goSig, strings.Replace(input, "12.50", "12.5", 1), ""}, // the same float64
		{RuleLiteral, litSig, input, ""},
		{RuleLiteral, goSig, input, CodeBadSignature},
		{RuleLiteral, litSig, strings.Replace(input, "12.50", "12.5", 1), CodeBadSignature},
	} {
		if st, body := admin(t, r.c, r.s, http.MethodPut, "canonical-rule", mustJSON(map[string]string{"rule": string(c.rule)})); st != http.StatusNoContent {
			t.Fatalf("setting rule %s: %d %s", c.rule, st, body)
		}
		if res := r.send(t, r.tok, "createMovieOrder", c.input, c.sig); res.Code() != c.want {
			t.Errorf("rule %s, input %s: code %q %+v; want %q", c.rule, c.input, res.Code(), res.Errors, c.want)
		}
	}
	if st, _ := admin(t, r.c, r.s, http.MethodPut, "canonical-rule", `{"rule":"js"}`); st != http.StatusBadRequest {
		t.Fatalf("an unknown rule: %d", st)
	}
}
