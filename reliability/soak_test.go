package reliability

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

const (
	soakReaders   = 16
	soakAccessTTL = 10 * time.Second
	soakLeaseTTL  = time.Second // config ttl
	soakPause     = 50 * time.Millisecond
	soakWarmUp    = 10 * time.Second
)

// soakDuration is 60s unless WETIX_SOAK_DURATION (a Go duration) says
// otherwise.
func soakDuration(t *testing.T) time.Duration {
	v := os.Getenv("WETIX_SOAK_DURATION")
	if v == "" {
		return 60 * time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 2*soakWarmUp {
		t.Fatalf("WETIX_SOAK_DURATION=%q: want a Go duration of at least %s", v, 2*soakWarmUp)
	}
	return d
}

// TestSoak has soakReaders readers read one mount's token through a real
// Vault for the soak duration, with 10s WeTix access tokens so that a
// refresh is due every 8.1s (90% of the 9s the plugin counts on). It checks that no read fails or gets a token WeTix
// refuses, that exactly one refresh runs per token lifetime however many
// readers wait, that the plugin's memory stays flat, and that Vault expires
// the leases rather than piling them up.
func TestSoak(t *testing.T) {
	srv, _ := vaulttest.StartWithPlugin(t, vaulttest.Options{})
	duration := soakDuration(t)
	secret := "soak-secret-" + randomSuffix()
	em := wetixtest.New(wetixtest.Options{ClientID: "soak-client", ClientSecret: secret, AccessTTL: soakAccessTTL})
	defer em.Close()
	const mount = "soak"
	if err := srv.TryMount(mount, vaulttest.PluginVersion); err != nil {
		t.Fatal(err)
	}
	vaulttest.Configure(t, srv.Client, mount, em, map[string]interface{}{"ttl": int(soakLeaseTTL.Seconds())})

	var (
		reads, errs atomic.Int64
		mu          sync.Mutex
		firstErrs   []string
		latencies   []time.Duration
		lastReads   []time.Time // end of each read, to count reads near the end
	)
	start := time.Now()
	deadline := start.Add(duration)
	var wg sync.WaitGroup
	for range soakReaders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			var ends []time.Time
			for time.Now().Before(deadline) {
				r := vaulttest.ReadToken(srv.Client, mount)
				reads.Add(1)
				lat = append(lat, r.Elapsed())
				ends = append(ends, r.End)
				var problem string
				switch {
				case r.Err != nil:
					problem = oneLine(vaulttest.ErrText(r.Err))
				case len(r.Warnings) > 0:
					problem = "warning: " + strings.Join(r.Warnings, " ")
				case !em.IsAccessTokenValid(r.AccessToken):
					problem = "served a token WeTix refuses"
				}
				if problem != "" {
					errs.Add(1)
					mu.Lock()
					if len(firstErrs) < 5 {
						firstErrs = append(firstErrs, fmt.Sprintf("%s: %s", r.End.Sub(start).Round(time.Millisecond), problem))
					}
					mu.Unlock()
				}
				time.Sleep(soakPause)
			}
			mu.Lock()
			latencies = append(latencies, lat...)
			lastReads = append(lastReads, ends...)
			mu.Unlock()
		}()
	}

	// Memory: once after warm-up (the plugin's heap has reached its working
	// size), then every 5s, and at the end.
	time.Sleep(soakWarmUp)
	rssStart := pluginRSS(t, srv)
	rssMax := rssStart
	for time.Until(deadline) > 5*time.Second {
		time.Sleep(5 * time.Second)
		rssMax = max(rssMax, pluginRSS(t, srv))
	}
	wg.Wait()
	elapsed := time.Since(start)
	rssEnd := pluginRSS(t, srv)
	rssMax = max(rssMax, rssEnd)
	leases := countLeases(t, srv, mount+"/token/")

	refreshCalls := em.Calls(wetixtest.GrantRefresh)
	ccCalls := em.Calls(wetixtest.GrantClientCredentials)
	refreshes := refreshCalls + ccCalls - 1 // the first client-credentials grant is not a refresh
	// The plugin counts a token's life as expires_in less one second (WeTix
	// counts whole seconds from its own clock's second; client.wholeSeconds),
	// rounded down to a whole second: 8.5s on average. It serves a token
	// until it can no longer carry a lease of max(ttl, 2s) (the floor that
	// keeps Vault Agent's re-reads in a later second) before expiry less the
	// 5% margin, so each token is used for life - margin - 2s.
	lifetime := soakAccessTTL - 1500*time.Millisecond
	used := lifetime - lifetime/20 - max(soakLeaseTTL, 2*time.Second)
	expected := elapsed.Seconds() / used.Seconds()
	slices.Sort(latencies)
	p := func(q float64) time.Duration { return latencies[int(q*float64(len(latencies)-1))] }
	cutoff := time.Now().Add(-soakLeaseTTL - 2*time.Second)
	recent := 0
	for _, end := range lastReads {
		if end.After(cutoff) {
			recent++
		}
	}
	leaseBound := soakReaders * int(elapsed/soakLeaseTTL)
	t.Logf("SOAK duration=%s reads=%d errors=%d refreshes=%d rss_start=%s rss_end=%s leases=%d (expected refreshes %.2f, refresh grants %d, client-credentials grants %d, rss_max=%s, read p50=%s p99=%s, reads in the last %s=%d, lease bound %d)",
		elapsed.Round(time.Second), reads.Load(), errs.Load(), refreshes, mib(rssStart), mib(rssEnd), leases,
		expected, refreshCalls, ccCalls, mib(rssMax), p(0.5).Round(time.Millisecond), p(0.99).Round(time.Millisecond), soakLeaseTTL+2*time.Second, recent, leaseBound)

	if n := errs.Load(); n != 0 {
		t.Errorf("%d of %d reads failed; first: %q", n, reads.Load(), firstErrs)
	}
	// One refresh per token, when it can no longer carry a 2s lease.
	if math.Abs(float64(refreshes)-expected) > 1.5 {
		t.Errorf("%d refreshes in %s, want %.1f ± 1.5 (one per %s)", refreshes, elapsed.Round(time.Second), expected, used)
	}
	// Every refresh used the refresh grant and WeTix accepted it: no
	// fallback, no replay, no refresh token lost under concurrency.
	if ccCalls != 1 || em.Successes(wetixtest.GrantRefresh) != refreshCalls {
		t.Errorf("client-credentials grants %d (want 1), refresh grants %d of which %d accepted", ccCalls, refreshCalls, em.Successes(wetixtest.GrantRefresh))
	}
	// Memory: a leak of even 512 bytes per read would add about 10 MiB
	// over the ~20k reads of a 60s run; the Go heap of an idle plugin moves
	// by a few MiB between GCs. So: at most 8 MiB or 25% over the warm-up
	// figure, whichever is larger.
	if bound := rssStart + max(8<<20, rssStart/4); rssEnd > bound {
		t.Errorf("plugin RSS grew from %s after warm-up to %s at the end (bound %s)", mib(rssStart), mib(rssEnd), mib(bound))
	}
	// Leases: each read makes one, Vault expires each after the 1s ttl. A
	// leak would leave every read's lease behind (reads >> the bound).
	if leases > leaseBound {
		t.Errorf("%d live leases after %d reads, more than readers x (run time / ttl) = %d: Vault does not expire them", leases, reads.Load(), leaseBound)
	}
	if int(reads.Load()) < 2*leaseBound {
		t.Logf("note: %d reads is not much above the lease bound %d; the lease check is weak on this machine", reads.Load(), leaseBound)
	}
}

// pluginRSS sums VmRSS of the plugin processes, in bytes.
func pluginRSS(t *testing.T, srv *vaulttest.Server) int64 {
	t.Helper()
	pids := srv.PluginPIDs()
	if len(pids) == 0 {
		t.Fatal("no plugin process")
	}
	var total int64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, err := strconv.ParseInt(f[1], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				total += kb << 10
			}
		}
	}
	return total
}

func mib(b int64) string { return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20)) }

// countLeases lists the live leases under prefix.
func countLeases(t *testing.T, srv *vaulttest.Server, prefix string) int {
	t.Helper()
	s, err := srv.Client.Logical().List("sys/leases/lookup/" + prefix)
	if err != nil {
		t.Fatal(err)
	}
	if s == nil {
		return 0
	}
	keys, _ := s.Data["keys"].([]interface{})
	return len(keys)
}
