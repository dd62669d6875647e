package sandboxcheck

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/client"
)

// The environment the check is meant for. Production is refused unless asked
// for by name: the check spends refresh tokens, mints tokens and sends a
// client-authentication failure, which on production would disturb whatever
// else uses the same client.
const (
	SandboxOAuthURL   = client.SandboxURL
	SandboxGraphQLURL = "https://sb-open.wetix.my/graphql"
)

var productionHosts = map[string]bool{"oauth.wetix.my": true, "oauth2.wetix.my": true, "open.wetix.my": true}

// Config is what Run needs. ClientSecret and SigningKey never reach the
// report.
type Config struct {
	OAuthURL     string
	GraphQLURL   string
	ClientID     string
	ClientSecret string
	// SigningKey is the private key whose public key is registered with
	// WeTix for this client; nil skips the canonical-rule question.
	SigningKey crypto.Signer
	// SessionKey, if set, is a real order session, for a WeTix that looks
	// the session up before it checks the signature; the order it creates is
	// a sandbox order. Empty uses a made-up key.
	SessionKey      string
	AllowProduction bool
	Timeout         time.Duration // per request; default 30 s
	Transport       http.RoundTripper
	Now             func() time.Time
}

func (c *Config) validate() error {
	var missing []string
	if c.ClientID == "" {
		missing = append(missing, "client ID (WETIX_CLIENT_ID)")
	}
	if c.ClientSecret == "" {
		missing = append(missing, "client secret (WETIX_CLIENT_SECRET or WETIX_CLIENT_SECRET_FILE)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s", strings.Join(missing, " and "))
	}
	for _, u := range []struct{ name, value string }{{"OAuth URL", c.OAuthURL}, {"GraphQL URL", c.GraphQLURL}} {
		parsed, err := url.Parse(u.value)
		if err != nil || parsed.Host == "" || (parsed.Scheme != "https" && parsed.Scheme != "http") {
			return fmt.Errorf("%s %q is not an http(s) URL", u.name, u.value)
		}
		if productionHosts[parsed.Hostname()] && !c.AllowProduction {
			return fmt.Errorf("%s %s is WeTix production: the check spends refresh tokens, mints new ones and sends a wrong client secret, which would disturb every other user of this client; run it against the sandbox (the default), or pass -allow-production if you mean it", u.name, u.value)
		}
	}
	return nil
}

// Verdict says how a finding compares with what the plugin assumes.
type Verdict string

const (
	// AsAssumed: WeTix does what the plugin assumes.
	AsAssumed Verdict = "as assumed"
	// Harmless: WeTix differs, in a way the plugin's worst-case assumption
	// already covers.
	Harmless Verdict = "differs, harmless"
	// Differs: WeTix differs in a way that changes what the plugin or the
	// operator must do; the answer's Advice says what.
	Differs Verdict = "DIFFERS"
	// Unanswered: the question could not be asked or the answer could not
	// be read; Advice says why.
	Unanswered Verdict = "not answered"
)

// Answer is one line of the report.
type Answer struct {
	ID       string // short, stable: what docs/sandbox-check.md lists
	Question string
	Finding  string // what WeTix did, redacted
	Assumed  string // what the plugin assumes
	Verdict  Verdict
	Advice   string // what to do when Verdict is Differs or Unanswered
}

// Report is the whole run.
type Report struct {
	OAuthURL, GraphQLURL, ClientID string
	Started                        time.Time
	Answers                        []Answer
}

// NeedsAction reports whether any answer differs from the plugin's
// assumptions in a way that matters, or could not be had.
func (r Report) NeedsAction() bool {
	for _, a := range r.Answers {
		if a.Verdict == Differs || a.Verdict == Unanswered {
			return true
		}
	}
	return false
}

// run carries one check's state from question to question: the tokens each
// step left behind are what the next one asks about.
type run struct {
	cfg     Config
	red     *redactor
	capture *captureTransport
	http    *http.Client
	good    *client.Client
	answers []Answer
}

// Run asks every question in order and returns the report. It returns an
// error only when the configuration is unusable; a question WeTix did not
// answer is an Unanswered line.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if cfg.OAuthURL == "" {
		cfg.OAuthURL = SandboxOAuthURL
	}
	if cfg.GraphQLURL == "" {
		cfg.GraphQLURL = SandboxGraphQLURL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if err := cfg.validate(); err != nil {
		return Report{}, err
	}
	next := cfg.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	r := &run{cfg: cfg, red: &redactor{}, capture: &captureTransport{next: next}}
	r.red.addClient(cfg.ClientID, cfg.ClientSecret)
	r.http = &http.Client{Transport: r.capture, Timeout: cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	r.good = r.clientWith(cfg.ClientSecret)

	report := Report{OAuthURL: cfg.OAuthURL, GraphQLURL: cfg.GraphQLURL, ClientID: cfg.ClientID, Started: cfg.Now().UTC()}
	r.ask(ctx)
	report.Answers = r.answers
	return report, nil
}

func (r *run) clientWith(secret string) *client.Client {
	return client.New(client.Config{
		BaseURL: r.cfg.OAuthURL, ClientID: r.cfg.ClientID, ClientSecret: secret,
		Timeout: r.cfg.Timeout, HTTPClient: r.http, UserAgent: client.DefaultUserAgent + " wetix-check",
		Now: r.cfg.Now,
	})
}

func (r *run) add(a Answer) {
	a.Finding = r.red.clean(a.Finding)
	a.Advice = r.red.clean(a.Advice)
	r.answers = append(r.answers, a)
}

// grant runs one grant and registers its tokens with the redactor before
// anything else sees them.
func (r *run) grant(ctx context.Context, c *client.Client, refreshToken string) (*client.Pair, capturedAnswer, error) {
	var p *client.Pair
	var err error
	if refreshToken == "" {
		p, err = c.ClientCredentials(ctx)
	} else {
		p, err = c.Refresh(ctx, refreshToken)
	}
	answer := r.capture.take()
	if p != nil {
		r.red.add(p.AccessToken, p.RefreshToken)
	}
	// A token the client refused to read (an odd answer) may still be in
	// the body; the JWT pattern and the shape's length-only strings keep it
	// out of the report.
	return p, answer, err
}

func describeErr(err error) string {
	var e *client.Error
	if errors.As(err, &e) {
		return fmt.Sprintf("the plugin's client read it as %q (%s)", e.Kind, e.Error())
	}
	return err.Error()
}
