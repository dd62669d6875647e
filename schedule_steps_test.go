package wetix

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
)

type stepKind int

const (
	stRead stepKind = iota
	stRotate
	stTick
	stStatus
	stConfigWrite
	stConfigDelete
	stInvalidate
	stCrash  // kill -9: the backend is abandoned, a new one starts on the same storage
	stReload // Cleanup, then a new backend
	stAdvance
	stUpstream    // WeTix starts behaving differently
	stWeTixSecret // WeTix's client secret changes (the operator rotated it there)
	stBurst       // concurrent requests
	stHeal        // every fault clears; one read must then succeed
	stRenew       // Vault renews one of the leases reads were given
)

// cfgWrite is a config create or update. Empty fields are not sent.
type cfgWrite struct {
	Secret    string // "A", "B" or "C": which client secret
	SyncWeTix bool   // WeTix gets the same secret in the same step
	URL       string // "emu", "dead" (connection refused) or "tls" (untrusted certificate)
	Seed      string // "fresh": a new refresh token minted by WeTix; "same": the config's seed again
	TTL       int    // seconds
}

func (c cfgWrite) String() string {
	var parts []string
	if c.Secret != "" {
		s := "client_secret=" + c.Secret
		if c.SyncWeTix {
			s += "(also at WeTix)"
		}
		parts = append(parts, s)
	}
	if c.URL != "" {
		parts = append(parts, "base_url="+c.URL)
	}
	if c.Seed != "" {
		parts = append(parts, "refresh_token="+c.Seed)
	}
	if c.TTL != 0 {
		parts = append(parts, fmt.Sprintf("ttl=%ds", c.TTL))
	}
	if len(parts) == 0 {
		return "(no fields)"
	}
	return strings.Join(parts, " ")
}

type step struct {
	Kind    stepKind
	Advance time.Duration
	Key     string // Invalidate key
	Cfg     cfgWrite
	Up      upstream
	Secret  string // WeTix's new client secret
	Storage *storageFault
	Burst   []step
	Offset  time.Duration // start delay of a burst member
	Fresh   bool          // the burst starts on a just-restarted backend
	Lease   int           // stRenew: which held lease (modulo how many)
	Inc     time.Duration // stRenew: the increment asked for (0: none)
}

func (s step) String() string {
	var b strings.Builder
	switch s.Kind {
	case stRead:
		b.WriteString("read token")
	case stRotate:
		b.WriteString("rotate")
	case stTick:
		b.WriteString("periodic tick")
	case stStatus:
		b.WriteString("read status")
	case stConfigWrite:
		b.WriteString("write config " + s.Cfg.String())
	case stConfigDelete:
		b.WriteString("delete config")
	case stInvalidate:
		b.WriteString("Invalidate(" + s.Key + ")")
	case stCrash:
		b.WriteString("crash (kill -9, new backend on the same storage)")
	case stReload:
		b.WriteString("reload (Cleanup, new backend)")
	case stAdvance:
		fmt.Fprintf(&b, "advance clock %s", s.Advance)
	case stUpstream:
		b.WriteString("WeTix: " + s.Up.String())
	case stWeTixSecret:
		b.WriteString("WeTix client secret becomes " + s.Secret)
	case stBurst:
		b.WriteString("burst")
		if s.Fresh {
			b.WriteString(" on a fresh backend")
		}
		b.WriteString(" {")
		for i, m := range s.Burst {
			if i > 0 {
				b.WriteString("; ")
			}
			fmt.Fprintf(&b, "+%s %s", m.Offset, m.String())
		}
		b.WriteString("}")
	case stHeal:
		b.WriteString("heal (clear every fault, past any cooldown) and read")
	case stRenew:
		fmt.Fprintf(&b, "renew held lease #%d increment %s", s.Lease, s.Inc)
	}
	if s.Storage != nil {
		b.WriteString(" with storage fault " + s.Storage.String())
	}
	return b.String()
}

// scheduleParams are fixed for one schedule.
type scheduleParams struct {
	AccessTTL, RefreshTTL time.Duration
}

type schedule struct {
	Seed    uint64
	Profile string // "uniform", or the focused profile it was drawn from
	Params  scheduleParams
	Steps   []step
}

func (s schedule) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "schedule seed=%d profile=%s access_ttl=%s refresh_ttl=%s, %d steps:\n", s.Seed, s.Profile, s.Params.AccessTTL, s.Params.RefreshTTL, len(s.Steps))
	for i, st := range s.Steps {
		fmt.Fprintf(&b, "  %2d. %s\n", i, st)
	}
	return b.String()
}

// gen draws a schedule from seed alone, so it replays exactly.
type gen struct {
	r *rand.Rand
	p scheduleParams
}

func genSchedule(seed uint64) schedule {
	if p := pickProfile(seed); p != nil {
		return withRenewals(genProfileSchedule(seed, p))
	}
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x5eed))}
	switch {
	case g.r.IntN(100) < 12:
		// Tokens so short that the last second of a lease matters.
		g.p.AccessTTL = time.Duration(5+g.r.IntN(6)) * time.Second
	default:
		g.p.AccessTTL = []time.Duration{20 * time.Minute, 45 * time.Minute, time.Hour, 2 * time.Hour}[g.r.IntN(4)]
	}
	g.p.RefreshTTL = 30 * 24 * time.Hour
	if g.r.IntN(4) == 0 {
		// A refresh token that nears its own end within the schedule.
		g.p.RefreshTTL = time.Duration(3+g.r.IntN(4)) * g.p.AccessTTL
	}
	n := 20 + g.r.IntN(41)
	s := schedule{Seed: seed, Profile: "uniform", Params: g.p}
	// Most schedules start configured; the rest begin with something else.
	if g.r.IntN(5) > 0 {
		s.Steps = append(s.Steps, step{Kind: stConfigWrite, Cfg: g.cfg(true)})
	}
	for len(s.Steps) < n {
		s.Steps = append(s.Steps, g.step())
	}
	return withRenewals(s)
}

func (g *gen) pick(weights ...int) int {
	total := 0
	for _, w := range weights {
		total += w
	}
	x := g.r.IntN(total)
	for i, w := range weights {
		if x < w {
			return i
		}
		x -= w
	}
	panic("unreachable")
}

func (g *gen) step() step {
	var s step
	switch g.pick(24, 5, 8, 3, 8, 3, 4, 4, 2, 22, 12, 3, 9, 3) {
	case 0:
		s.Kind = stRead
	case 1:
		s.Kind = stRotate
	case 2:
		s.Kind = stTick
	case 3:
		s.Kind = stStatus
	case 4:
		s.Kind, s.Cfg = stConfigWrite, g.cfg(false)
	case 5:
		s.Kind = stConfigDelete
	case 6:
		s.Kind, s.Key = stInvalidate, g.key()
	case 7:
		s.Kind = stCrash
	case 8:
		s.Kind = stReload
	case 9:
		s.Kind, s.Advance = stAdvance, g.advance()
	case 10:
		s.Kind, s.Up = stUpstream, g.upstream()
	case 11:
		s.Kind, s.Secret = stWeTixSecret, g.secret()
	case 12:
		s = g.burst()
	case 13:
		s.Kind = stHeal
	}
	switch s.Kind {
	case stRead, stRotate, stTick, stConfigWrite, stConfigDelete, stBurst:
		if g.r.IntN(100) < 9 {
			s.Storage = &storageFault{Op: []string{"get", "put", "put", "delete", "list"}[g.r.IntN(5)], Skip: g.r.IntN(3), Count: 1 + g.r.IntN(2)}
		}
	}
	return s
}

func (g *gen) key() string {
	if g.r.IntN(2) == 0 {
		return configStoragePath
	}
	return tokensStoragePath
}

func (g *gen) secret() string { return []string{"A", "B", "C"}[g.r.IntN(3)] }

// ttl is drawn relative to the token's life, so that both lease regimes
// come up: a ttl the token carries whole (with the 10% window left over)
// and one it cannot.
func (g *gen) ttl() int {
	frac := []float64{0.01, 0.03, 0.08, 0.3, 0.6, 0.84, 0.9, 0.97, 1.5}[g.r.IntN(9)]
	return max(1, int(frac*g.p.AccessTTL.Seconds()))
}

func (g *gen) cfg(create bool) cfgWrite {
	var c cfgWrite
	if create {
		c.Secret, c.SyncWeTix, c.URL, c.TTL = "A", true, "emu", g.ttl()
		if g.r.IntN(3) == 0 {
			c.Seed = "fresh"
		}
		return c
	}
	switch g.pick(4, 3, 2, 2, 3) {
	case 0: // credentials
		c.Secret = g.secret()
		c.SyncWeTix = g.r.IntN(3) > 0
	case 1:
		c.URL = []string{"emu", "emu", "dead", "tls"}[g.r.IntN(4)]
	case 2:
		c.Seed = []string{"fresh", "same"}[g.r.IntN(2)]
	case 3:
		c.Secret, c.SyncWeTix, c.URL = g.secret(), true, "emu"
		c.TTL = g.ttl()
	case 4:
		c.TTL = g.ttl()
	}
	return c
}

func (g *gen) advance() time.Duration {
	l := g.p.AccessTTL.Seconds()
	var secs float64
	switch g.pick(4, 4, 2, 5, 5, 3) {
	case 0: // inside a failure cooldown
		secs = float64(1+g.r.IntN(4)) - 0.9*g.r.Float64()
	case 1: // just past it
		secs = float64(5 + g.r.IntN(4))
	case 2: // past a Retry-After
		secs = float64(31 + g.r.IntN(95))
	case 3:
		secs = l * (0.05 + 0.45*g.r.Float64())
	case 4: // into the refresh window
		secs = l * (0.85 + 0.12*g.r.Float64())
	case 5: // past expiry
		secs = l * (1 + 1.5*g.r.Float64())
	}
	if g.p.AccessTTL < 20*time.Second {
		// Short tokens: land between whole seconds too, where a lease
		// floor of 1 s can outlive the token.
		return time.Duration(max(100, int64(secs*1000)/100*100)) * time.Millisecond
	}
	return time.Duration(max(1, int64(secs))) * time.Second
}

var failingKinds = []upKind{up500, up503, up502HTML, up429, upDrop, upDropProc, upTrunc, upTruncProc, upDelayLong, upDelayLongProc, upHTML200}

func (g *gen) upstream() upstream {
	u := upstream{RA: []int{1, 30, 120}[g.r.IntN(3)]}
	if g.r.IntN(100) < 30 {
		return u // healthy again
	}
	any := func() upKind {
		switch g.pick(5, 6, 1, 1) {
		case 0:
			return []upKind{upOK, upDelayShort, upOmitRT, upOmitExp}[g.r.IntN(4)]
		case 1:
			return failingKinds[g.r.IntN(len(failingKinds))]
		case 2:
			return upInvalidGrant
		default:
			return upInvalidClient
		}
	}
	switch g.pick(4, 4, 2) {
	case 0: // WeTix down or broken alike for both grants
		k := any()
		if k == upInvalidGrant {
			k = up503
		}
		u.Refresh, u.CC = k, k
	case 1:
		u.Refresh, u.CC = any(), any()
		if u.CC == upInvalidGrant {
			u.CC = upOK
		}
	case 2: // a blip that retries ride out
		u.OneShot, u.OneShotN = failingKinds[g.r.IntN(len(failingKinds))], 1+g.r.IntN(2)
		u.Refresh, u.CC = upOK, upOK
	}
	return u
}

func (g *gen) burst() step {
	s := step{Kind: stBurst, Fresh: g.r.IntN(10) < 3}
	reads := 1 + g.r.IntN(5)
	for range reads {
		s.Burst = append(s.Burst, step{Kind: stRead})
	}
	for range 1 + g.r.IntN(2) {
		var m step
		switch g.pick(5, 4, 5, 3, 3, 1) {
		case 0:
			m.Kind = stRotate
		case 1:
			m.Kind = stTick
		case 2:
			m.Kind, m.Key = stInvalidate, g.key()
		case 3:
			m.Kind = stConfigWrite
			m.Cfg = cfgWrite{TTL: g.ttl()}
			if g.r.IntN(2) == 0 {
				m.Cfg = cfgWrite{Secret: g.secret(), SyncWeTix: true}
			}
		case 4:
			m.Kind = stConfigDelete
		case 5:
			m.Kind = stStatus
		}
		s.Burst = append(s.Burst, m)
	}
	for i := range s.Burst {
		s.Burst[i].Offset = time.Duration(g.r.IntN(40)) * time.Millisecond
	}
	return s
}
