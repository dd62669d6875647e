package wetix

import (
	"errors"
	"flag"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	flagSchedules = flag.Int("schedules", 300, "TestLifecycleSchedules: how many random schedules to run")
	flagSeed      = flag.Uint64("seed", 1, "TestLifecycleSchedules: seed of the first schedule; schedule i uses seed+i")
	flagFailures  = flag.Int("schedule-failures", 1, "TestLifecycleSchedules: stop after this many failing schedules")
	flagProfile   = flag.String("schedule-profile", "", "TestLifecycleSchedules: run only the seeds drawn from this profile (uniform, or a focused one)")
)

// TestLifecycleSchedules runs seeded random schedules of the whole token
// lifecycle: reads (alone and in concurrent bursts with rotate, ticks,
// config writes, deletes and Invalidate), rotate, config create / update /
// delete, Invalidate, the periodic tick, crashes and reloads, storage faults,
// clock jumps and every fault the WeTix emulator can produce. After every
// step it checks:
//
//  1. no spent refresh token is ever sent again (WeTix counts replays);
//  2. a refresh token stored without the "sent" mark (in the tokens entry of
//     the config's generation, or as the config's seed when there is none)
//     is not spent at WeTix; and within a generation the stored pair only
//     moves forward;
//  3. after a successful config delete: token reads say "not configured",
//     status says configured=false, the config does not read, and storage
//     holds no entry at all, until the next config write;
//  4. every served token is valid at WeTix, its lease ends before the token
//     does, and a read without warning of a token that can carry a full ttl
//     lease gets exactly ttl;
//  5. a read's (and rotate's) outcome is the one the README's rules give for
//     the current state: stored config and credential, WeTix's current
//     behaviour, and the failure cooldown;
//  6. once every fault clears and any cooldown has passed, one read succeeds
//     with at most one client-credentials call;
//  7. no error, warning or status field carries a client secret or token;
//  8. no counter of the metrics path is ever below its value after the
//     previous step, unless the step deleted the config (their HELP says a
//     delete resets them);
//  9. status served_until, and any "served until" its advice quotes, is the
//     last instant a read is still served the stored token (the oracle's
//     servable rule, within the second RFC 3339 drops).
//
// One seed in four draws its schedule from a focused profile
// (schedule_profiles_test.go) that steers into states the uniform
// generator rarely reaches; the printed schedule names its profile, and
// -schedule-profile=NAME runs only the seeds of one profile.
//
// A failure prints the seed and the schedule; replay it with
//
//	go test -run TestLifecycleSchedules -seed=S -schedules=1 .
func TestLifecycleSchedules(t *testing.T) {
	n, base := *flagSchedules, *flagSeed
	start := time.Now()
	var (
		next     atomic.Int64
		steps    atomic.Int64
		ran      atomic.Int64
		mu       sync.Mutex
		failures []scheduleFailure
		byProf   = map[string]int{}
	)
	stop := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(failures) >= *flagFailures
	}
	var wg sync.WaitGroup
	// Schedules are independent worlds; most of a schedule's time is spent
	// waiting on loopback HTTP, so a few more workers than cores pay.
	for range runtime.GOMAXPROCS(0) * 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop() {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				sch := genSchedule(base + uint64(i))
				if *flagProfile != "" && sch.Profile != *flagProfile {
					continue
				}
				mu.Lock()
				byProf[sch.Profile]++
				mu.Unlock()
				w := newWorld(t, sch)
				err := w.run()
				w.close()
				steps.Add(int64(w.checked))
				ran.Add(1)
				if err != nil {
					mu.Lock()
					failures = append(failures, scheduleFailure{sch: sch, err: err})
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("schedules=%d steps=%d violations=%d seed=%d (%.1fs, %.1fs per 1000 schedules)",
		ran.Load(), steps.Load(), len(failures), base, elapsed.Seconds(), elapsed.Seconds()*1000/float64(max(1, ran.Load())))
	t.Logf("schedules by profile: %v", byProf)
	t.Logf("lease renewals: %d granted, %d refused", renewalsGranted.Load(), renewalsRefused.Load())
	if *flagProfile == "" && n >= 100 && (renewalsGranted.Load() == 0 || renewalsRefused.Load() == 0) {
		t.Errorf("renewal steps never both granted and refused: invariant 8 checked nothing")
	}
	tally := map[string]int{}
	for _, f := range failures {
		tally[fmt.Sprintf("%s/inv%d", f.sch.Profile, invariantOf(f.err))]++
	}
	if len(tally) > 0 {
		t.Logf("failing schedules by profile/invariant: %v", tally)
	}
	sort.Slice(failures, func(i, j int) bool { return failures[i].sch.Seed < failures[j].sch.Seed })
	for _, f := range failures {
		t.Errorf("schedule seed=%d: %v\nreplay: go test -run TestLifecycleSchedules -seed=%d -schedules=1 .\n%s",
			f.sch.Seed, f.err, f.sch.Seed, f.sch)
	}
}

type scheduleFailure struct {
	sch schedule
	err error
}

// invariantOf is the number of the invariant err broke, for tallies.
func invariantOf(err error) int {
	var v *violation
	if errors.As(err, &v) {
		return v.inv
	}
	return 0
}
