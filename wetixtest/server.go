package wetixtest

import (
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Grant names a token endpoint by the grant_type it accepts.
type Grant string

const (
	GrantClientCredentials Grant = "client_credentials" // POST /auth/token
	GrantRefresh           Grant = "refresh_token"      // POST /auth/refresh
)

const (
	defaultClientID     = "test-client-id"
	defaultClientSecret = "test-client-secret"
	defaultAccessTTL    = 60 * 24 * time.Hour  // the docs' expires_in 5184000
	defaultRefreshTTL   = 365 * 24 * time.Hour // the docs' refresh_token_expires_in 31536000
	defaultAddr         = "127.0.0.1:0"
)

// Options configures a Server. The zero value is a usable server.
type Options struct {
	ClientID, ClientSecret string        // defaults "test-client-id" / "test-client-secret"
	AccessTTL, RefreshTTL  time.Duration // defaults 60 and 365 days; expires_in is whole seconds, at least 1
	AllowRefreshReuse      bool          // false: a refresh token is spent by its first successful use
	// RevokeAccessOnRefresh plays a WeTix that kills every earlier access
	// token when a refresh succeeds. The docs do not say whether it does;
	// the default (false) keeps earlier access tokens valid until they
	// expire, and the sandbox check (cmd/wetix-check) asks the real one.
	RevokeAccessOnRefresh bool
	// RevokeOnClientCredentials plays a WeTix whose client-credentials
	// grant kills every earlier access and refresh token of the client
	// (undocumented too; by default they stay valid).
	RevokeOnClientCredentials bool
	Issuer                    string // iss claim; default URL()
	Now                       func() time.Time
	Addr                      string // listen address; default "127.0.0.1:0"
	// TLS, if set, serves https with it (it must carry the certificate);
	// URL then starts with https://. Nil serves plain http.
	TLS *tls.Config

	// OnRequest, if set, is called once per request after it is answered
	// (or dropped). RequestInfo carries no secret or token, so it is safe to
	// log. It runs on the request goroutine and must not block.
	OnRequest func(RequestInfo)
}

// RequestInfo describes a handled request for OnRequest.
type RequestInfo struct {
	Method   string
	Path     string // without the query
	Grant    Grant  // "" for admin and unknown paths
	Status   int    // 0 when no status line was sent (Drop, client gone during Delay)
	Fault    string // short summary of the fault applied, "" if none
	Duration time.Duration
	// UserAgent is the request's User-Agent header: tests check the plugin
	// names itself and its version.
	UserAgent string
}

// Pair is one issued access/refresh token pair.
type Pair struct {
	Grant            Grant
	AccessToken      string
	RefreshToken     string // "" when the answer carried none (OmitRefreshToken)
	AccessExpiresAt  time.Time
	RefreshExpiresAt time.Time
}

// Server is a running WeTix OAuth emulator. All methods are safe for
// concurrent use.
type Server struct {
	opts      Options
	url       string
	key       []byte // HS256 key; private, as WeTix's is to its clients
	clientKey string
	hs        *http.Server
	admin     http.Handler
	served    chan struct{} // closed when hs.Serve returns
	done      chan struct{} // closed by Close to cut Delay sleeps short
	inflight  sync.WaitGroup

	mu            sync.Mutex
	closed        bool
	secret        string
	calls         map[Grant]int
	successes     map[Grant]int
	faults        []Fault             // FIFO; Times counts down the remaining uses
	live          map[string]struct{} // jti of refresh tokens that may still be used
	issuedAccess  map[string]struct{} // jti of live access tokens a refresh would kill (RevokeAccessOnRefresh)
	revokedBefore map[string]struct{} // jti of access tokens killed by a refresh (RevokeAccessOnRefresh)
	ledger        spentLedger
	last          Pair

	gql graphqlState // the signed mutations (graphql.go)
}

// New starts a Server listening on opts.Addr and panics if it cannot, the
// way httptest.NewServer does. Callers should Close it.
func New(opts Options) *Server {
	s, err := Start(opts)
	if err != nil {
		panic("wetixtest: " + err.Error())
	}
	return s
}

// Start is New for callers (like cmd/wetix-emulator) that need the error.
func Start(opts Options) (*Server, error) {
	if opts.ClientID == "" {
		opts.ClientID = defaultClientID
	}
	if opts.ClientSecret == "" {
		opts.ClientSecret = defaultClientSecret
	}
	if opts.AccessTTL <= 0 {
		opts.AccessTTL = defaultAccessTTL
	}
	if opts.RefreshTTL <= 0 {
		opts.RefreshTTL = defaultRefreshTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Addr == "" {
		opts.Addr = defaultAddr
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.Addr, err)
	}
	scheme := "http://"
	if opts.TLS != nil {
		ln = tls.NewListener(ln, opts.TLS)
		scheme = "https://"
	}
	key := make([]byte, 32)
	rand.Read(key)
	s := &Server{
		opts:          opts,
		url:           scheme + dialableHost(ln.Addr()),
		key:           key,
		clientKey:     clientKey(opts.ClientID),
		served:        make(chan struct{}),
		done:          make(chan struct{}),
		secret:        opts.ClientSecret,
		calls:         map[Grant]int{},
		successes:     map[Grant]int{},
		live:          map[string]struct{}{},
		revokedBefore: map[string]struct{}{},
		issuedAccess:  map[string]struct{}{},
	}
	s.admin = s.adminMux()
	if s.opts.Issuer == "" {
		s.opts.Issuer = s.url
	}
	// No write timeout: Delay faults must be able to outlast any client.
	s.hs = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 30 * time.Second}
	go func() {
		defer close(s.served)
		s.hs.Serve(ln)
	}()
	return s, nil
}

// dialableHost turns a wildcard listen address into one a client can dial.
func dialableHost(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	ip := tcp.IP
	switch {
	case ip.IsUnspecified() && ip.To4() == nil:
		ip = net.IPv6loopback
	case ip.IsUnspecified():
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(tcp.Port))
}

// URL is the base URL, e.g. "http://127.0.0.1:41234", without a trailing slash.
func (s *Server) URL() string { return s.url }

// Close stops the server, cuts pending Delays short and waits for every
// handler to return, so tests do not leak goroutines. It is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.hs.Close() // first, so handlers woken below find their connections gone
	close(s.done)
	<-s.served
	s.inflight.Wait()
}

// enter registers a handler with Close. It shares mu with closed so that no
// inflight.Add can race with inflight.Wait.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.inflight.Add(1)
	return true
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusServiceUnavailable, "server_error", "emulator is shutting down")
		return
	}
	defer s.inflight.Done()
	start := time.Now()
	rec := &recorder{ResponseWriter: w}
	var grant Grant
	switch path := r.URL.Path; {
	case path == "/auth/token":
		grant = GrantClientCredentials
		s.serveGrant(rec, r, grant)
	case path == "/auth/refresh":
		grant = GrantRefresh
		s.serveGrant(rec, r, grant)
	case path == "/graphql":
		s.serveGraphQL(rec, r)
	case strings.HasPrefix(path, adminPrefix):
		s.admin.ServeHTTP(rec, r)
	default:
		writeError(rec, http.StatusNotFound, "not_found", "no such endpoint")
	}
	if s.opts.OnRequest != nil {
		s.opts.OnRequest(RequestInfo{
			Method: r.Method, Path: r.URL.Path, Grant: grant,
			Status: rec.status, Fault: rec.fault, Duration: time.Since(start),
			UserAgent: r.UserAgent(),
		})
	}
}

// recorder remembers the status for OnRequest. Unwrap keeps
// http.ResponseController (and so Hijack) working through it.
type recorder struct {
	http.ResponseWriter
	status int
	fault  string
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Calls counts requests that reached the grant's endpoint, whatever their
// fate: errors, faults and dropped answers included.
func (s *Server) Calls(g Grant) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[g]
}

// TotalCalls is Calls of both grants: every request that reached a token
// endpoint, which is what a test means by "the plugin called WeTix".
func (s *Server) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[GrantClientCredentials] + s.calls[GrantRefresh]
}

// MountConfig is the config a plugin mount needs to use this emulator: the
// client credentials it accepts now and its URL. extra adds fields or
// overrides these (another client_id, a ttl, a seed refresh token).
func (s *Server) MountConfig(extra map[string]interface{}) map[string]interface{} {
	s.mu.Lock()
	data := map[string]interface{}{
		"client_id":     s.opts.ClientID,
		"client_secret": s.secret,
		"base_url":      s.url,
	}
	s.mu.Unlock()
	for k, v := range extra {
		data[k] = v
	}
	return data
}

// Successes counts pairs actually issued, including ones whose answer a fault
// then lost (Process).
func (s *Server) Successes(g Grant) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.successes[g]
}

// ResetCounts zeroes Calls and Successes.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.calls)
	clear(s.successes)
}

// LastIssued returns the most recently issued pair, or the zero Pair.
func (s *Server) LastIssued() Pair {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// SetClientSecret rotates the client secret at the provider: requests with
// the old one get 401 invalid_client from then on. Issued tokens stay valid.
func (s *Server) SetClientSecret(secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secret = secret
}

// RevokeAllRefreshTokens kills every refresh token issued or seeded so far.
func (s *Server) RevokeAllRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.live)
}

// SeedRefreshToken mints a live refresh token as if issued by an earlier
// client-credentials call, for tests where the operator already holds one.
// It does not count as a call or success and does not change LastIssued.
func (s *Server) SeedRefreshToken() string {
	c := newClaims(tokenTypeRefresh, s.clientKey, s.opts.Issuer, s.opts.Now(), ttlSeconds(s.opts.RefreshTTL))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.live[c.JTI] = struct{}{}
	return sign(s.key, c)
}

// IsAccessTokenValid reports whether tok is an access token signed by this
// server, for its client, and not expired by the Now clock.
func (s *Server) IsAccessTokenValid(tok string) bool {
	c, ok := s.parse(tok, tokenTypeAccess)
	if !ok || !c.validAt(s.opts.Now()) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, revoked := s.revokedBefore[c.JTI]
	return !revoked
}

// IsRefreshTokenLive reports whether the refresh grant would accept tok now.
func (s *Server) IsRefreshTokenLive(tok string) bool {
	c, ok := s.parse(tok, tokenTypeRefresh)
	if !ok || !c.validAt(s.opts.Now()) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, live := s.live[c.JTI]
	return live
}

func (s *Server) parse(tok, tokenType string) (claims, bool) {
	c, ok := verify(s.key, tok)
	return c, ok && c.TokenType == tokenType && c.ClientKey == s.clientKey
}

// authenticate compares in constant time because cmd/wetix-emulator can be
// exposed beyond loopback with -allow-remote.
func (s *Server) authenticate(r *http.Request) bool {
	id, secret, ok := r.BasicAuth()
	if !ok {
		return false
	}
	s.mu.Lock()
	want := s.secret
	s.mu.Unlock()
	idOK := subtle.ConstantTimeCompare([]byte(id), []byte(s.opts.ClientID))
	secretOK := subtle.ConstantTimeCompare([]byte(secret), []byte(want))
	return idOK&secretOK == 1
}
