package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
)

// scaleSample is the state at one moment of a run and the window before it.
type scaleSample struct {
	T                             time.Duration // since the load started
	At                            time.Time
	Gauge                         leaseGauge
	VaultRSS, PluginRSS, ProxyRSS int64 // KiB; ProxyRSS 0 without a Proxy
	// CPU cores used over the window by Vault, the plugin, the Proxy and
	// this process (the load generator).
	VaultCPU, PluginCPU, ProxyCPU, BenchCPU float64
	W                                       window
	Span                                    time.Duration // the window's length
}

// cpuMeter turns a process's cumulative CPU time into cores used since the
// previous reading.
type cpuMeter struct {
	probe  cpuProbe
	last   time.Duration
	lastAt time.Time
	primed bool
}

func (m *cpuMeter) cores(now time.Time) float64 {
	if m.probe == nil {
		return 0
	}
	cur := m.probe()
	defer func() { m.last, m.lastAt, m.primed = cur, now, true }()
	if !m.primed || !now.After(m.lastAt) {
		return 0
	}
	return float64(cur-m.last) / float64(now.Sub(m.lastAt))
}

// scaleEnd is what the run measured after the load stopped.
type scaleEnd struct {
	Elapsed               time.Duration // from the first slot to the last answer
	StopAt                time.Time
	Interrupted           bool // by a signal, before the duration was up
	OK, Errors            int
	Sent, Late            int64
	P50, P99              time.Duration
	FirstError            string
	VaultHWM              int64 // KiB, Vault's peak resident set (VmHWM)
	Listed                int   // LIST sys/leases/lookup/<mount>/token/ right after the load; -1 if not listed
	ListTook              time.Duration
	Settled               leaseGauge // the first gauge from an interval that began after the load stopped
	StartLeases           int        // LIST before the load
	WeTixCalls            int
	Tokens, LeaseIDs      int
	EndLeases, PeakLeases int64
}

func (c *scaleCell) run() {
	set := c.set
	addr, token := c.srv.Addr, c.srv.Token
	via := "Vault at " + addr + ", root token"
	if c.proxy != nil {
		// The Proxy forces its auto-auth token (the root token from its
		// token_file): readers send none, as apps behind it would.
		addr, token = c.proxy.Addr, ""
		via = "Vault Proxy at " + addr + " (cache {}, use_auto_auth_token = \"force\"), no token header"
	}
	load := &pacedLoad{client: newLoadClient(addr, token, set.readers), target: target{Method: http.MethodGet, Path: scaleMount + "/" + set.path},
		rate: set.rate, workers: set.readers, inspect: c.seen.inspect}
	defer load.client.close()

	vaultPID := c.srv.PID()
	meters := map[string]*cpuMeter{
		"vault":  {probe: cpuOf(vaultPID)},
		"plugin": {probe: func() time.Duration { return cpuOf(c.srv.PluginPIDs()...)() }},
		"bench":  {probe: cpuOf(os.Getpid())},
		"proxy":  {},
	}
	if c.proxy != nil {
		meters["proxy"].probe = cpuOf(c.proxy.PID())
	}
	sample := func(t time.Duration, span time.Duration) scaleSample {
		now := time.Now()
		s := scaleSample{T: t, At: now, Span: span, W: load.takeWindow()}
		s.VaultCPU, s.PluginCPU = meters["vault"].cores(now), meters["plugin"].cores(now)
		s.ProxyCPU, s.BenchCPU = meters["proxy"].cores(now), meters["bench"].cores(now)
		var err error
		if s.Gauge, err = readLeaseGauge(c.hc, c.srv.Addr, c.srv.Token); err != nil {
			c.b.Fatal(err)
		}
		s.VaultRSS = c.rss(vaultPID)
		if pids := c.srv.PluginPIDs(); len(pids) > 0 {
			if m, err := memoryOf(pids); err == nil {
				s.PluginRSS = m.RSS
			}
		}
		if c.proxy != nil {
			s.ProxyRSS = c.rss(c.proxy.PID())
		}
		c.samples = append(c.samples, s)
		c.printSample(s)
		return s
	}

	end := scaleEnd{Listed: -1, StartLeases: c.listLeases()}
	fmt.Printf("scale: %s | %s/%s | %s via %s | ttl %s (the first read's lease: %ds, renewable=%v) | %.0f reads/s for %s from %d readers | plugin %s %s\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), scaleMount, set.path, set.label, via, shortDur(set.ttl), c.first.LeaseDuration, c.first.Renewable, set.rate, shortDur(set.duration), set.readers, c.plugin.Version, c.plugin.File)
	fmt.Printf("scale: machine: %s\n", machine())
	fmt.Printf("scale: leases are vault.expire.num_leases from GET sys/metrics: the last finished %s interval, so up to %s old (shown as 'as of Ns ago')\n", metricsInterval, metricsInterval)
	// The first sample shows the state after the setup, not a gauge of
	// Vault's first seconds.
	c.settledGauge(time.Now())
	calls0 := c.emu.TotalCalls()
	sample(0, 0)

	// Ctrl-C (or a TERM) ends the load early and still reports, with the
	// time it ran, and the test's cleanup stops Vault, its plugin and the
	// Proxy; a second one kills the process as usual.
	interrupted, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	start := time.Now()
	done := make(chan struct{})
	go func() { load.run(start, set.duration); close(done) }()
	tick := time.NewTicker(set.sample)
	last := start
	for running := true; running; {
		select {
		case now := <-tick.C:
			sample(now.Sub(start), now.Sub(last))
			last = now
		case <-interrupted.Done():
			stopSignals()
			load.stop.Store(true)
			end.Interrupted = true
			fmt.Printf("scale: interrupted at t=%.0fs: stopping the load, then reporting what ran\n", time.Since(start).Seconds())
			interrupted = context.Background() // its Done is nil: this case is over
		case <-done:
			running = false
		}
	}
	tick.Stop()
	stop := time.Now()
	// A tick that came with the end already sampled it.
	final := c.samples[len(c.samples)-1]
	if stop.Sub(last) >= time.Second {
		final = sample(stop.Sub(start), stop.Sub(last))
	}

	end.Elapsed, end.StopAt = stop.Sub(start), stop
	end.OK, end.Errors, end.P50, end.P99, end.FirstError = load.totals()
	end.Sent, end.Late = load.sent.Load(), load.late.Load()
	end.WeTixCalls = c.emu.TotalCalls() - calls0
	end.Tokens, end.LeaseIDs = c.seen.counts()
	if m, err := processMemory(vaultPID); err == nil {
		end.VaultHWM = m.HWM
	}
	if set.list {
		t0 := time.Now()
		end.Listed = c.listLeases()
		end.ListTook = time.Since(t0)
	}
	end.Settled = c.settledGauge(stop)
	end.EndLeases = end.Settled.Leases
	if end.Listed >= 0 {
		end.EndLeases = int64(end.Listed)
	}
	end.PeakLeases = max(end.EndLeases, end.Settled.Leases)
	for _, s := range c.samples {
		end.PeakLeases = max(end.PeakLeases, s.Gauge.Leases)
	}
	c.report(final, end)
}

func (c *scaleCell) rss(pid int) int64 {
	m, err := processMemory(pid)
	if err != nil {
		c.b.Fatalf("memory of pid %d: %v", pid, err)
	}
	return m.RSS
}

// listLeases counts the live leases of the token path, as an operator
// would: vault list sys/leases/lookup/<mount>/token/.
func (c *scaleCell) listLeases() int {
	return vaulttest.LiveLeases(c.b, c.srv.Client, scaleMount)
}

// settledGauge waits for the lease gauge of an interval that began after
// since: before the load, the count once the setup is done; after it, the
// count with the load over, to set against LIST.
func (c *scaleCell) settledGauge(since time.Time) leaseGauge {
	var g leaseGauge
	ok := vaulttest.WaitFor(3*metricsInterval+5*time.Second, func() bool {
		var err error
		g, err = readLeaseGauge(c.hc, c.srv.Addr, c.srv.Token)
		if errors.Is(err, errNoLeaseGauge) {
			time.Sleep(500 * time.Millisecond)
			return false
		}
		if err != nil {
			c.b.Fatal(err)
		}
		if !g.AsOf.Add(-metricsInterval).Before(since) {
			return true
		}
		time.Sleep(500 * time.Millisecond)
		return false
	})
	if !ok {
		c.b.Fatalf("sys/metrics showed no interval with the lease gauge that began after %s; the last ends %s", since.UTC().Format(time.TimeOnly), g.AsOf.UTC().Format(time.TimeOnly))
	}
	return g
}

func (c *scaleCell) printSample(s scaleSample) {
	rate := 0.0
	if s.Span > 0 {
		rate = float64(s.W.OK) / s.Span.Seconds()
	}
	proxy := ""
	if c.proxy != nil {
		proxy = fmt.Sprintf(" proxy %.0f MiB", kibToMiB(s.ProxyRSS))
	}
	fmt.Printf("scale: t=%5.0fs leases %7d (as of %2.0fs ago) vault %6.0f MiB plugin %4.0f MiB%s | %6.0f reads/s p50 %s p99 %s errors %d, most behind schedule %s | cores: vault %.2f plugin %.2f proxy %.2f bench %.2f\n",
		s.T.Seconds(), s.Gauge.Leases, s.At.Sub(s.Gauge.AsOf).Seconds(), kibToMiB(s.VaultRSS), kibToMiB(s.PluginRSS), proxy,
		rate, windowMS(s.W, s.W.P50), windowMS(s.W, s.W.P99), s.W.Errors, windowMS(s.W, s.W.MaxLag), s.VaultCPU, s.PluginCPU, s.ProxyCPU, s.BenchCPU)
}

func kibToMiB(kib int64) float64 { return float64(kib) / 1024 }

// machine is the host in one line: CPUs, CPU model, memory.
func machine() string {
	model, mem := "unknown CPU", "unknown memory"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int64
		for _, line := range strings.Split(string(b), "\n") {
			if _, err := fmt.Sscanf(line, "MemTotal: %d kB", &kib); err == nil {
				mem = fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s memory", runtime.NumCPU(), model, mem)
}
