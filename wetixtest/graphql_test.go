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

func publicPEM(t *testing.T, k *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// signFor signs input as an app would with Vault's answer.
func signFor(t *testing.T, k *rsa.PrivateKey, clientID, mutation, input string, ts int64) json.RawMessage {
	t.Helper()
	c, err := signature.Canonicalize([]byte(input))
	if err != nil {
		t.Fatal(err)
	}
	sig, _, err := signature.SignInput(k, clientID, mutation, c, ts)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(sig)
	return raw
}

const orderInput = `{"sessionKey":"s-1","referenceId":"123","customer":{"externalId":null,"email":"a@b.c","countryCode":"60","phoneNo":"167385346"},"tickets":[{"key":"k","quantity":1,"price":1.50}],"concessions":null,"bundles":null,"promoCode":null}`

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
		// The same value with other number text: WeTix sees different text.
		{"number-text-changed", r.tok, "createMovieOrder", strings.Replace(orderInput, `1.50`, `1.5`, 1), good, 200, CodeBadSignature},
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
