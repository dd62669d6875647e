package wetixtest

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
)

// DefaultSignatureWindow is how far a signature's timestamp may be from the
// emulator's clock, either way. WeTix does not document its window.
const DefaultSignatureWindow = 5 * time.Minute

// GraphQL error codes the emulator answers with (extensions.code).
const (
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeBadRequest      = "BAD_REQUEST"
	CodeNoPublicKey     = "NO_PUBLIC_KEY"
	CodeBadSignature    = "INVALID_SIGNATURE"
	CodeStaleTimestamp  = "STALE_TIMESTAMP"
)

// graphqlState is the Open API side: the integrator's public key, as the
// operator sent it to WeTix, and what was accepted.
type graphqlState struct {
	mu       sync.Mutex
	pub      *rsa.PublicKey
	window   time.Duration
	rule     CanonicalRule
	accepted map[string]int
	refused  map[string]int
	orders   int
}

// SetSigningPublicKey registers the integrator's public key (PEM "PUBLIC
// KEY" or "RSA PUBLIC KEY"), replacing any earlier one: WeTix holds one per
// client and swaps it by hand. An empty string removes it.
func (s *Server) SetSigningPublicKey(pemText string) error {
	var pub *rsa.PublicKey
	if strings.TrimSpace(pemText) != "" {
		var err error
		if pub, err = parsePublicKey(pemText); err != nil {
			return err
		}
	}
	s.gql.mu.Lock()
	defer s.gql.mu.Unlock()
	s.gql.pub = pub
	return nil
}

func parsePublicKey(pemText string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(strings.TrimSpace(pemText)))
	if block == nil {
		return nil, errors.New("public_key is not PEM")
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public_key: %w", err)
		}
		pub, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("public_key is %T, not RSA", k)
		}
		return pub, nil
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(block.Bytes)
	}
	return nil, fmt.Errorf("public_key is a PEM %q block, not a public key", block.Type)
}

// SetCanonicalRule changes how the emulator rebuilds the JSON it verifies
// (RuleGo by default), to play a WeTix that verifies the other way.
func (s *Server) SetCanonicalRule(r CanonicalRule) error {
	switch r {
	case "", RuleGo, RuleLiteral:
	default:
		return fmt.Errorf("canonical rule must be %q or %q, not %q", RuleGo, RuleLiteral, r)
	}
	s.gql.mu.Lock()
	defer s.gql.mu.Unlock()
	s.gql.rule = r
	return nil
}

// SetSignatureWindow changes DefaultSignatureWindow.
func (s *Server) SetSignatureWindow(d time.Duration) {
	s.gql.mu.Lock()
	defer s.gql.mu.Unlock()
	s.gql.window = d
}

// SignedMutations reports how many signed mutations were accepted and
// refused, by mutation name ("" for requests refused before a name was known).
func (s *Server) SignedMutations() (accepted, refused map[string]int) {
	s.gql.mu.Lock()
	defer s.gql.mu.Unlock()
	accepted, refused = map[string]int{}, map[string]int{}
	for k, v := range s.gql.accepted {
		accepted[k] = v
	}
	for k, v := range s.gql.refused {
		refused[k] = v
	}
	return accepted, refused
}

// gqlRequest is the standard GraphQL-over-HTTP body. Variables are kept raw,
// so the input's numbers are verified with the exact text the app sent.
type gqlRequest struct {
	Query         string                     `json:"query"`
	OperationName string                     `json:"operationName"`
	Variables     map[string]json.RawMessage `json:"variables"`
}

// GraphQLError is one entry of a GraphQL response's errors.
type GraphQLError struct {
	Message    string            `json:"message"`
	Extensions map[string]string `json:"extensions"`
}

var cinemasQuery = regexp.MustCompile(`^(query\b[^{]*)?\{\s*cinemas\b`)

func isCinemasQuery(q string) bool { return cinemasQuery.MatchString(strings.TrimSpace(q)) }

var mutationField = regexp.MustCompile(`\b(createMovieOrder|confirmMovieOrder)\s*\(`)

func (s *Server) serveGraphQL(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeGraphQLError(w, http.StatusMethodNotAllowed, CodeBadRequest, "use POST")
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !s.IsAccessTokenValid(tok) {
		s.countRefused("")
		writeGraphQLError(w, http.StatusUnauthorized, CodeUnauthenticated, "missing, invalid or expired access token")
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4*maxBodyBytes))
	if err != nil {
		writeGraphQLError(w, http.StatusBadRequest, CodeBadRequest, "unreadable body")
		return
	}
	var req gqlRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		writeGraphQLError(w, http.StatusBadRequest, CodeBadRequest, "body is not a GraphQL JSON request")
		return
	}
	if isCinemasQuery(req.Query) {
		// The cheapest authenticated read in WeTix's docs (docs/graphql/
		// queries.md), so a client can tell a live access token from a dead
		// one. The emulator knows no cinemas.
		body, _ := json.Marshal(map[string]any{"data": map[string]any{"cinemas": map[string]any{"totalCount": 0, "nodes": []any{}}}})
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
		return
	}
	names := mutationField.FindAllStringSubmatch(req.Query, -1)
	if !strings.HasPrefix(strings.TrimSpace(req.Query), "mutation") || len(names) != 1 {
		s.countRefused("")
		writeGraphQLError(w, http.StatusOK, CodeBadRequest, "the emulator serves one createMovieOrder or confirmMovieOrder mutation, or a cinemas query, per request")
		return
	}
	name := names[0][1]
	data, code, msg := s.verifySigned(name, req.Variables)
	if code != "" {
		s.countRefused(name)
		writeGraphQLError(w, http.StatusOK, code, msg)
		return
	}
	s.gql.mu.Lock()
	if s.gql.accepted == nil {
		s.gql.accepted = map[string]int{}
	}
	s.gql.accepted[name]++
	s.gql.mu.Unlock()
	body, _ := json.Marshal(map[string]any{"data": map[string]any{name: data}})
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// verifySigned checks the signature argument the way WeTix describes it.
// Arguments must come as the variables $input and $signature.
func (s *Server) verifySigned(mutation string, vars map[string]json.RawMessage) (map[string]any, string, string) {
	input, sigRaw := vars["input"], vars["signature"]
	if len(input) == 0 || len(sigRaw) == 0 {
		return nil, CodeBadRequest, "pass the arguments as variables: " + mutation + "(input: $input, signature: $signature)"
	}
	var sig struct {
		Algorithm *string `json:"algorithm"`
		Timestamp *int64  `json:"timestamp"`
		Hash      *string `json:"hash"`
	}
	if err := json.Unmarshal(sigRaw, &sig); err != nil || sig.Algorithm == nil || sig.Timestamp == nil || sig.Hash == nil {
		return nil, CodeBadRequest, "signature must be {algorithm: String!, timestamp: Int!, hash: String!}"
	}
	if *sig.Algorithm != "SHA256" {
		return nil, CodeBadSignature, "signature.algorithm must be SHA256"
	}
	s.gql.mu.Lock()
	pub, window, rule := s.gql.pub, s.gql.window, s.gql.rule
	s.gql.mu.Unlock()
	if window == 0 {
		window = DefaultSignatureWindow
	}
	if skew := s.opts.Now().Sub(time.Unix(*sig.Timestamp, 0)); skew > window || -skew > window {
		return nil, CodeStaleTimestamp, "signature.timestamp is outside the accepted window"
	}
	if pub == nil {
		return nil, CodeNoPublicKey, "no public key is registered for this client"
	}
	canonical, err := rule.rebuild(input)
	if err != nil {
		return nil, CodeBadRequest, "input: " + err.Error()
	}
	// The client ID in the plaintext is the one the access token was issued
	// to: a signature made for another client does not verify.
	pt := signedPlaintext(s.opts.ClientID, canonical, mutation, *sig.Timestamp)
	if !verifiesRSASHA256(pub, pt, *sig.Hash) {
		return nil, CodeBadSignature, "signature does not verify"
	}
	var in map[string]any
	json.Unmarshal(input, &in)
	s.gql.mu.Lock()
	s.gql.orders++
	id := fmt.Sprintf("order-%d", s.gql.orders)
	s.gql.mu.Unlock()
	return map[string]any{"id": id, "referenceId": in["referenceId"]}, "", ""
}

func (s *Server) countRefused(mutation string) {
	s.gql.mu.Lock()
	defer s.gql.mu.Unlock()
	if s.gql.refused == nil {
		s.gql.refused = map[string]int{}
	}
	s.gql.refused[mutation]++
}

func writeGraphQLError(w http.ResponseWriter, status int, code, msg string) {
	body, _ := json.Marshal(map[string]any{"data": nil, "errors": []GraphQLError{{Message: msg, Extensions: map[string]string{"code": code}}}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

// Admin: the operator "sends the public key to WeTix".
//
//	PUT    /_emulator/signing-public-key  {"public_key":"-----BEGIN PUBLIC KEY-----..."}  204
//	GET    /_emulator/signing-public-key  200 {"public_key":"..."} or 404
//	DELETE /_emulator/signing-public-key  204
func (s *Server) adminSigningKeyRoutes(mux *http.ServeMux) {
	const p = adminPrefix + "signing-public-key"
	mux.HandleFunc("PUT "+p, func(w http.ResponseWriter, r *http.Request) {
		raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		var body struct {
			PublicKey string `json:"public_key"`
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err != nil || dec.Decode(&body) != nil || strings.TrimSpace(body.PublicKey) == "" {
			writeError(w, http.StatusBadRequest, "invalid_request", `body must be {"public_key":"<PEM>"}`)
			return
		}
		if err := s.SetSigningPublicKey(body.PublicKey); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET "+p, func(w http.ResponseWriter, _ *http.Request) {
		s.gql.mu.Lock()
		pub := s.gql.pub
		s.gql.mu.Unlock()
		if pub == nil {
			writeError(w, http.StatusNotFound, "not_found", "no public key registered")
			return
		}
		der, _ := x509.MarshalPKIXPublicKey(pub)
		writeResult(w, jsonResult(http.StatusOK, map[string]string{"public_key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}))
	})
	mux.HandleFunc("DELETE "+p, func(w http.ResponseWriter, _ *http.Request) {
		s.SetSigningPublicKey("")
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("PUT "+adminPrefix+"canonical-rule", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Rule CanonicalRule `json:"rule"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		dec.DisallowUnknownFields()
		if dec.Decode(&body) != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", `body must be {"rule":"go"} or {"rule":"literal"}`)
			return
		}
		if err := s.SetCanonicalRule(body.Rule); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
