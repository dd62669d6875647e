package wetix

import (
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// The oracle says what a read, rotate or tick must do given only the current
// state: the stored config and credential, WeTix's current behaviour and the
// failure cooldown. It is written from the README's "How it behaves" and
// issue 9, not from the code.

type verdict string

const (
	oToken       verdict = "token"
	oStale       verdict = "token with warning"
	oRotated     verdict = "rotated"
	oNotConf     verdict = "not configured"
	oBadCreds    verdict = "invalid client credentials"
	oUnavailable verdict = "WeTix unavailable"
	oTLS         verdict = "certificate not trusted"
	oStorage     verdict = "storage"
	oOther       verdict = "other error"
)

var allFailures = []verdict{oBadCreds, oUnavailable, oTLS, oStorage}

const (
	// scheduleCooldown is the plugin's failure cooldown, as in production.
	scheduleCooldown = 5 * time.Second
	// retryCap is the longest single backoff the schedules allow. Every
	// Retry-After WeTix sends is longer, so honouring it ends the round at
	// once (the next call would come sooner than WeTix asked).
	retryCap = 5 * time.Millisecond
	// attempts per refresh round; the one-shot faults stay well below it, so
	// the README's "retried 4 times" and the code's 4 calls agree on them.
	scheduleAttempts = 4
	// scheduleMaxCooldown bounds any cooldown a failure can start here
	// (the longest Retry-After the schedules send is 120s).
	scheduleMaxCooldown = 125 * time.Second
)

// classify names a read's or rotate's answer.
func classify(resp *logical.Response, err error) (verdict, string) {
	if err == nil && resp != nil && !resp.IsError() {
		if _, ok := resp.Data["access_token"]; ok {
			if len(resp.Warnings) > 0 {
				return oStale, ""
			}
			return oToken, ""
		}
		return oRotated, ""
	}
	var text string
	if err != nil {
		text = err.Error()
	} else if resp != nil {
		text = resp.Error().Error()
	}
	switch {
	case strings.Contains(text, "not configured"):
		return oNotConf, text
	case strings.Contains(text, errInjectedStorage.Error()) || strings.Contains(text, "storing the WeTix tokens"):
		return oStorage, text
	case strings.Contains(text, "rejected the client credentials") || strings.Contains(text, "invalid_client"):
		return oBadCreds, text
	// An untrusted certificate is a configuration error: an answer that
	// calls it an outage ("unavailable, try again later") is the wrong one.
	case strings.Contains(text, "unavailable") || strings.Contains(text, "could not be reached"):
		return oUnavailable, text
	case strings.Contains(text, "certificate"):
		return oTLS, text
	}
	return oOther, text
}

// leaseMarginOf is the README's margin: 1 minute, or 5% of a short token's life.
func leaseMarginOf(life time.Duration) time.Duration { return min(time.Minute, life/20) }

// carriesFullLease: a fresh token can carry a whole ttl lease and still
// leave the 10% window (issue 9, defect 8).
func carriesFullLease(life, ttl time.Duration) bool {
	return life-leaseMarginOf(life)-ttl >= life/10
}

// reading is one way the plugin may see a token's life. expires_in counts
// whole seconds from an instant the plugin cannot know to the second, so it
// may take the token to die up to a second before its exp claim (or exactly
// at it, when expires_in is missing), and to be born up to a second after
// its iat claim (its own clock when the answer came). Where a rule lands
// differently on these readings, every answer one of them gives is right.
type reading struct{ expShave, issueShift time.Duration }

var readings = []reading{{0, 0}, {time.Second, 0}, {0, time.Second}, {time.Second, time.Second}}

// lifeOf is a token's life and time left under reading r.
func lifeOf(access string, now time.Time, r reading) (life, left time.Duration, ok bool) {
	iat, exp, ok := jwtTimes(access)
	if !ok {
		return 0, 0, false
	}
	exp = exp.Add(-r.expShave)
	return exp.Sub(iat.Add(r.issueShift)), exp.Sub(now), true
}

// due: no token; inside the last 10% of its life; too short to lease
// honestly (under 2 s of lease left, 1 s for the shortest tokens); unable to carry a full ttl lease
// although a fresh one could; or the refresh token near its own end.
// It returns whether the token is due under every reading, and under some.
func due(c credential, ttl time.Duration, now time.Time) (all, some bool) {
	all = true
	for _, r := range readings {
		d := dueWith(c, ttl, now, r)
		all, some = all && d, some || d
	}
	return all, some
}

func dueWith(c credential, ttl time.Duration, now time.Time, r reading) bool {
	if c.access == "" {
		return true
	}
	life, left, ok := lifeOf(c.access, now, r)
	if !ok {
		return true
	}
	m := leaseMarginOf(life)
	// The shortest honest lease is 2 s (Agent must re-read in a later
	// second), 1 s for a token too short-lived to carry 2 s even when fresh.
	floor := 2 * time.Second
	if life-m < floor {
		floor = time.Second
	}
	if left <= life/10 || left-m < floor || left <= m {
		return true
	}
	if carriesFullLease(life, ttl) && left-m < ttl {
		return true
	}
	if c.refresh != "" && !c.refreshIssuedAt.IsZero() && !c.refreshExpires.IsZero() {
		if c.refreshExpires.Sub(now) <= c.refreshExpires.Sub(c.refreshIssuedAt)/10 {
			return true
		}
	}
	return false
}

// servable: the README serves the old token with a warning when it "can
// still carry a full ttl lease (margin included)"; maybe when only some
// readings say so.
func servable(c credential, ttl time.Duration, now time.Time) (yes, maybe bool) {
	if c.access == "" {
		return false, false
	}
	yes = true
	for _, r := range readings {
		life, left, ok := lifeOf(c.access, now, r)
		strict := ok && left-leaseMarginOf(life) >= ttl
		yes, maybe = yes && strict, maybe || strict
	}
	return yes, maybe && !yes
}

// failure is a refresh round that got no new pair.
type failure struct {
	class verdict
	until time.Time // end of the cooldown it starts
}

// model is the oracle's memory: only what the plugin is documented to
// remember (the last failure, for its cooldown) and what the test itself
// changes (WeTix's behaviour).
type model struct {
	up          upstream
	oneShotLeft int
	wetixSecret string
	cooldown    *failure

	// fuzzyUntil: before it, the cooldown may hold a failure the model could
	// not pin down (a storage fault, a burst), so any failure answer is
	// accepted. pending: memory may hold a pair storage lacks.
	fuzzyUntil time.Time
	pending    bool
	// deleted: the last config change was a successful delete.
	deleted bool
}

func (m *model) fuzzy(now time.Time) bool { return m.pending || now.Before(m.fuzzyUntil) }

func (m *model) blur(now time.Time) { m.fuzzyUntil = now.Add(scheduleMaxCooldown) }

// forget is what a restart or a new generation does to the plugin's memory.
func (m *model) forget() {
	m.cooldown, m.pending, m.fuzzyUntil = nil, false, time.Time{}
}

// roundEnv is what a refresh round depends on besides the upstream.
type roundEnv struct {
	url         string // "emu", "dead", "tls"
	secretOK    bool
	usable      bool // an unsent, unexpired refresh token is stored
	refreshLive bool // WeTix would accept it
}

// round plays one refresh round against the model's upstream: the refresh
// grant at most once, then the client-credentials grant, transient failures
// retried up to the attempt budget, a Retry-After ending the round. It
// consumes one-shot faults as the calls would.
func (m *model) round(env roundEnv) (ok bool, class verdict, retryAfter time.Duration) {
	switch env.url {
	case "tls":
		return false, oTLS, 0
	case "dead":
		return false, oUnavailable, 0
	}
	next := func(refresh bool) upKind {
		if m.oneShotLeft > 0 {
			m.oneShotLeft--
			return m.up.OneShot
		}
		if refresh {
			return m.up.Refresh
		}
		return m.up.CC
	}
	// result: 0 success, 1 transient, 2 refresh token rejected, 3 bad client
	result := func(k upKind, refresh bool) int {
		switch {
		case k.succeeds() && !env.secretOK:
			return 3
		case k.succeeds() && refresh && !env.refreshLive:
			return 2
		case k.succeeds():
			return 0
		case k == upInvalidGrant:
			return 2
		case k == upInvalidClient:
			return 3
		}
		return 1
	}
	ra := func(k upKind) time.Duration {
		if k == up429 {
			return time.Duration(m.up.RA) * time.Second
		}
		return 0
	}
	attempt := 0
	if env.usable {
		k := next(true)
		attempt++
		switch result(k, true) {
		case 0:
			return true, "", 0
		case 1:
			if ra(k) > retryCap {
				return false, oUnavailable, ra(k)
			}
		}
	}
	for attempt < scheduleAttempts {
		k := next(false)
		attempt++
		switch result(k, false) {
		case 0:
			return true, "", 0
		case 3:
			return false, oBadCreds, 0
		case 2:
			return false, oOther, 0
		}
		if ra(k) > retryCap {
			return false, oUnavailable, ra(k)
		}
	}
	return false, oUnavailable, 0
}

func (m *model) recordRound(now time.Time, ok bool, class verdict, ra time.Duration) {
	if ok {
		m.cooldown = nil
		return
	}
	m.cooldown = &failure{class: class, until: now.Add(max(scheduleCooldown, ra))}
}

// answerFrom is what a read gets from a failed round: the old token with a
// warning if the failure was transient and the token stays servable,
// otherwise the error.
func answerFrom(class verdict, c credential, ttl time.Duration, now time.Time) []verdict {
	if class != oUnavailable {
		return []verdict{class}
	}
	yes, maybe := servable(c, ttl, now)
	switch {
	case yes:
		return []verdict{oStale}
	case maybe:
		return []verdict{oStale, oUnavailable}
	}
	return []verdict{oUnavailable}
}

// expectRead is the README's rule for one read; it updates the model as the
// read would (a round's failure starts a cooldown).
func (m *model) expectRead(v storedView, env roundEnv, now time.Time) []verdict {
	if v.cfg == nil {
		return []verdict{oNotConf}
	}
	c, ttl := v.credential(), v.ttl()
	all, some := due(c, ttl, now)
	if !some {
		return []verdict{oToken}
	}
	var out []verdict
	if !all {
		// Due or not depends on the expiry slack: the cached token is
		// right, and so is a refresh, whose round the model cannot count.
		out = append(out, oToken)
		m.blur(now)
	}
	if m.cooldown != nil && now.Before(m.cooldown.until) {
		return append(out, answerFrom(m.cooldown.class, c, ttl, now)...)
	}
	ok, class, ra := m.round(env)
	m.recordRound(now, ok, class, ra)
	if ok {
		return append(out, oToken)
	}
	return append(out, answerFrom(class, c, ttl, now)...)
}

// expectRotate: a forced round, whatever the cooldown; any failure is an
// error, since the caller asked for a new token.
func (m *model) expectRotate(v storedView, env roundEnv, now time.Time) []verdict {
	if v.cfg == nil {
		return []verdict{oNotConf}
	}
	ok, class, ra := m.round(env)
	m.recordRound(now, ok, class, ra)
	if ok {
		return []verdict{oRotated}
	}
	return []verdict{class}
}

// tick: a due token is refreshed in the background unless a cooldown holds.
func (m *model) tick(v storedView, env roundEnv, now time.Time) {
	all, some := due(v.credential(), v.ttl(), now)
	if v.cfg == nil || !some {
		return
	}
	if !all {
		m.blur(now)
		return
	}
	if m.cooldown != nil && now.Before(m.cooldown.until) {
		return
	}
	ok, class, ra := m.round(env)
	m.recordRound(now, ok, class, ra)
}

// anyAnswer is what a fuzzy model accepts for a read of a configured mount.
func anyAnswer() []verdict {
	return append([]verdict{oToken, oStale}, allFailures...)
}

func accepts(set []verdict, o verdict) bool { return slices.Contains(set, o) }
