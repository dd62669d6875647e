package wetix

import (
	"math/rand/v2"
	"time"
)

// Focused profiles. The uniform generator rarely lines up the few states in
// which some lifecycle defects show: a due token that can still be served, a
// flight the readers join, an outage followed by a rejection, the last second
// of a very short token. A share of the seeds draws from one of these
// profiles instead: scripted episodes with random parameters, general steps
// between them. The oracle judges them like any other step.

// focusedShare: one schedule in focusedShare is focused.
const focusedShare = 4

type profile struct {
	name  string
	build func(pb *profileBuilder)
}

var profiles = []profile{
	{"window-servable", buildWindowServable},
	{"outage-then-invalid-client", buildOutageThenInvalidClient},
	{"rotate-burst-outage", buildRotateBurstOutage},
	{"short-no-expires-in", buildShortNoExpiresIn},
}

// pickProfile draws from its own stream, so that a seed the uniform
// generator keeps replays the same schedule as before profiles existed.
func pickProfile(seed uint64) *profile {
	r := rand.New(rand.NewPCG(seed, 0xf0c5ed))
	if r.IntN(focusedShare) != 0 {
		return nil
	}
	return &profiles[r.IntN(len(profiles))]
}

// profileBuilder tracks the schedule clock, which only advance and heal
// steps move, so an episode can land at a chosen point of a token's life.
type profileBuilder struct {
	*gen
	steps   []step
	elapsed time.Duration
}

func (pb *profileBuilder) add(ss ...step) {
	for _, s := range ss {
		switch s.Kind {
		case stAdvance:
			pb.elapsed += s.Advance
		case stHeal:
			pb.elapsed += scheduleMaxCooldown
		}
		pb.steps = append(pb.steps, s)
	}
}

func (pb *profileBuilder) advance(d time.Duration) { pb.add(step{Kind: stAdvance, Advance: d}) }

func (pb *profileBuilder) up(u upstream) { pb.add(step{Kind: stUpstream, Up: u}) }

// filler adds up to n steps of the uniform generator, so that episodes meet
// whatever state those leave (the next episode starts with a heal).
func (pb *profileBuilder) filler(n int) {
	for range pb.r.IntN(n + 1) {
		pb.add(pb.step())
	}
}

// startEpisode heals (every fault cleared, a config at the emulator) and
// sets the episode's ttl.
func (pb *profileBuilder) startEpisode(ttl int) {
	pb.add(step{Kind: stHeal}, step{Kind: stConfigWrite, Cfg: cfgWrite{TTL: ttl}})
}

func genProfileSchedule(seed uint64, p *profile) schedule {
	g := &gen{r: rand.New(rand.NewPCG(seed, 0xe915))}
	pb := &profileBuilder{gen: g}
	p.build(pb)
	return schedule{Seed: seed, Profile: p.name, Params: g.p, Steps: pb.steps}
}

func (g *gen) longTokens() {
	g.p.AccessTTL = []time.Duration{20 * time.Minute, 45 * time.Minute, time.Hour, 2 * time.Hour}[g.r.IntN(4)]
	g.p.RefreshTTL = 30 * 24 * time.Hour
}

// windowTTL is a ttl that a token inside its 10% refresh window can still
// carry whole (margin included), so a due token stays servable there.
func (g *gen) windowTTL() int {
	l := g.p.AccessTTL
	room := l/10 - leaseMarginOf(l) - 45*time.Second
	return 1 + g.r.IntN(max(1, int(room.Seconds())))
}

// inWindow is how long after a token's issue to stand so that it is due (in
// its last 10%) yet still carries ttl: life left in (ttl+margin+20s, 10%),
// so it stays servable through the ~17 s an episode moves the clock after.
func (g *gen) inWindow(ttl int) time.Duration {
	l := g.p.AccessTTL
	lo := time.Duration(ttl)*time.Second + leaseMarginOf(l) + 20*time.Second
	hi := l/10 - 2*time.Second
	left := lo + time.Duration(g.r.Int64N(int64(max(time.Second, hi-lo))))
	return (l - left).Truncate(time.Second)
}

// transient is a persistent failure WeTix shows to both grants. A timeout
// costs a second a round, so it is drawn only one time in slowOneIn.
func (g *gen) transient(slowOneIn int) upstream {
	kinds := []upKind{up500, up503, up502HTML, upDrop, upDropProc, upTrunc, upTruncProc, upHTML200, up429}
	if g.r.IntN(slowOneIn) == 0 {
		kinds = []upKind{upDelayLong, upDelayLongProc}
	}
	k := kinds[g.r.IntN(len(kinds))]
	// A 1 s Retry-After keeps the cooldown at the plugin's own 5 s.
	return upstream{Refresh: k, CC: k, RA: 1}
}

// buildWindowServable is the uniform generator with small ttls, clock steps
// into the refresh window and transient faults more often: the states in
// which a due token is still served with a warning.
func buildWindowServable(pb *profileBuilder) {
	pb.longTokens()
	ttl := pb.windowTTL()
	pb.add(step{Kind: stConfigWrite, Cfg: cfgWrite{Secret: "A", SyncWeTix: true, URL: "emu", TTL: ttl}})
	n := 25 + pb.r.IntN(26)
	for len(pb.steps) < n {
		switch pb.pick(3, 3, 2, 6) {
		case 0: // a token issued now, then due but still servable
			pb.up(upstream{RA: 1})
			pb.add(step{Kind: stRotate})
			pb.advance(pb.inWindow(ttl))
		case 1:
			pb.up(pb.transient(6))
		case 2:
			pb.advance(time.Duration(1+pb.r.IntN(9)) * time.Second)
		default:
			s := pb.step()
			if s.Kind == stConfigWrite && s.Cfg.TTL != 0 {
				s.Cfg.TTL = ttl
			}
			pb.add(s)
		}
	}
}

// buildOutageThenInvalidClient: a due but servable token, a transient
// outage (reads get it with a warning), then WeTix rejects the client
// credentials; past the cooldown a read must say so (issue 9, defect 3).
func buildOutageThenInvalidClient(pb *profileBuilder) {
	pb.longTokens()
	pb.add(step{Kind: stConfigWrite, Cfg: cfgWrite{Secret: "A", SyncWeTix: true, URL: "emu", TTL: 1}})
	for range 2 + pb.r.IntN(3) {
		ttl := pb.windowTTL()
		pb.startEpisode(ttl)
		pb.add(step{Kind: stRotate}) // a token issued now
		pb.advance(pb.inWindow(ttl))
		pb.up(pb.transient(20))
		// The outage starts on a read or on the periodic tick.
		if pb.r.IntN(3) == 0 {
			pb.add(step{Kind: stTick})
		} else {
			pb.add(step{Kind: stRead})
		}
		for range pb.r.IntN(3) {
			pb.advance(time.Duration(100+pb.r.IntN(3000)) * time.Millisecond)
			pb.add(step{Kind: stRead})
		}
		// WeTix now rejects the client: its own answer, or a secret reset
		// in its console that the config does not know yet.
		if pb.r.IntN(2) == 0 {
			pb.up(upstream{Refresh: upInvalidClient, CC: upInvalidClient, RA: 1})
		} else {
			pb.up(upstream{RA: 1})
			pb.add(step{Kind: stWeTixSecret, Secret: []string{"B", "C"}[pb.r.IntN(2)]})
		}
		pb.advance(time.Duration(5+pb.r.IntN(4)) * time.Second) // past the 5 s cooldown
		for range 1 + pb.r.IntN(3) {
			if pb.r.IntN(4) == 0 {
				pb.add(step{Kind: stTick})
			}
			pb.add(step{Kind: stRead})
			pb.advance(time.Duration(100+pb.r.IntN(900)) * time.Millisecond)
		}
		pb.filler(3)
	}
}

// buildRotateBurstOutage: WeTix fails while an operator rotates, and
// reads arrive during the rotate; each must get what a read alone would
// (issue 9, defect 2).
func buildRotateBurstOutage(pb *profileBuilder) {
	pb.longTokens()
	pb.add(step{Kind: stConfigWrite, Cfg: cfgWrite{Secret: "A", SyncWeTix: true, URL: "emu", TTL: 1}})
	for range 1 + pb.r.IntN(3) {
		ttl := pb.windowTTL()
		pb.startEpisode(ttl)
		pb.add(step{Kind: stRotate})
		if pb.r.IntN(4) == 0 {
			// Not due: a read answers from the cached token, or, on a
			// fresh backend, loads it while the rotate runs.
			pb.advance(time.Duration(1+pb.r.IntN(600)) * time.Second)
		} else {
			pb.advance(pb.inWindow(ttl))
		}
		pb.up(pb.transient(5))
		b := step{Kind: stBurst, Fresh: pb.r.IntN(2) == 0, Burst: []step{{Kind: stRotate}}}
		for range 2 + pb.r.IntN(4) {
			b.Burst = append(b.Burst, step{Kind: stRead, Offset: time.Duration(1+pb.r.IntN(12)) * time.Millisecond})
		}
		pb.add(b)
		pb.add(step{Kind: stRead})
		pb.filler(3)
	}
}

// buildShortNoExpiresIn: tokens of a few seconds whose answers lack
// expires_in, so the plugin trusts the JWT's exp to the second; the clock
// lands in the token's last second, where a lease rounded up to a floor
// would outlive it (issue 9, defect 6).
func buildShortNoExpiresIn(pb *profileBuilder) {
	l := 5 + pb.r.IntN(6)
	pb.p.AccessTTL = time.Duration(l) * time.Second
	pb.p.RefreshTTL = 30 * 24 * time.Hour
	// ttl at least 85% of the life: no full-ttl rule, only the floor decides.
	ttl := max(1, int(float64(l)*(0.9+0.6*pb.r.Float64())))
	pb.add(step{Kind: stConfigWrite, Cfg: cfgWrite{Secret: "A", SyncWeTix: true, URL: "emu", TTL: ttl}})
	for range 2 + pb.r.IntN(3) {
		pb.startEpisode(ttl)
		u := upstream{Refresh: upOmitExp, CC: upOmitExp, RA: 1}
		if pb.r.IntN(5) == 0 {
			u = upstream{RA: 1}
		}
		pb.up(u)
		for range 1 + pb.r.IntN(3) {
			pb.add(step{Kind: stRotate}) // exp: l seconds after the whole second it is issued in
			frac := pb.elapsed % time.Second
			// Time left when the read comes, mostly under a second.
			left := time.Duration(5+pb.r.IntN(6)) * 100 * time.Millisecond
			if pb.r.IntN(4) == 0 {
				left = time.Duration(1+pb.r.IntN(25)) * 100 * time.Millisecond
			}
			pb.advance(time.Duration(l)*time.Second - frac - left)
			pb.add(step{Kind: stRead})
			if pb.r.IntN(2) == 0 {
				pb.advance(time.Duration(1+pb.r.IntN(9)) * 100 * time.Millisecond)
				pb.add(step{Kind: stRead})
			}
		}
		pb.filler(2)
	}
}
