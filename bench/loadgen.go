// Package bench measures the plugin through a real Vault dev server on
// loopback: throughput and latency of token reads against KV v2, the floor
// (bench/cmd/floor-plugin: an external plugin that only answers a constant
// leased secret) and leased builtin engines, upstream calls under a burst of reads of a due token, the
// plugin process's memory and its cold start. It prints figures; nothing in
// it passes or fails on a timing.
//
// `make bench` (scripts/bench.sh) runs it and writes docs/benchmarks.md. By
// hand:
//
//	go test -v -count=1 -timeout 20m -run '^$' -bench '^BenchmarkVault$' -benchtime 1x ./bench
//
// Environment (all optional):
//
//	WETIX_BENCH_OUT=file          write the markdown fragment there
//	WETIX_BENCH_DURATION=1.5s     measured time of one cell (one engine at one concurrency in one round)
//	WETIX_BENCH_SLICES=5          the cell is measured in this many slices, the engines taking turns
//	WETIX_BENCH_WARMUP=100ms      unmeasured time before each slice (connections stay open between slices)
//	WETIX_BENCH_ROUNDS=3          rounds of the whole matrix; medians are reported
//	WETIX_BENCH_PROFILE=file      also save a 5s CPU profile of Vault under token reads
//	WETIX_PLUGIN_BINARY=path      plugin to register (default: built from source)
//	WETIX_PLUGIN_VERSION=v0.1.0   the version baked into WETIX_PLUGIN_BINARY
//
// BenchmarkScale (scale_test.go) is the scale envelope, one cell per run:
// readers read wetix/token open loop at a fixed rate, straight to Vault or
// through a caching Vault Proxy, and it samples Vault's live leases
// (vault.expire.num_leases) and the resident memory of Vault, the plugin and
// the Proxy. It runs only when WETIX_SCALE_VIA is set; `make scale`
// (scripts/scale.sh) runs the matrix of lease options and writes
// docs/scale.md. One cell by hand:
//
//	WETIX_SCALE_VIA=proxy WETIX_SCALE_DURATION=90s go test -v -count=1 -timeout 0 -run '^$' -bench '^BenchmarkScale$' -benchtime 1x ./bench
//
// Its knobs: WETIX_SCALE_VIA=direct|proxy, WETIX_SCALE_RATE (reads/s, 1000),
// WETIX_SCALE_DURATION (10m), WETIX_SCALE_TTL (the mount's ttl, 1h),
// WETIX_SCALE_READERS (32), WETIX_SCALE_SAMPLE (30s), WETIX_SCALE_LABEL (the
// option's name in the report), WETIX_SCALE_OUT (append the row and the
// samples there), WETIX_SCALE_LIST=0 (skip counting the leases with LIST at
// the end), and WETIX_PLUGIN_BINARY / WETIX_PLUGIN_VERSION as above.
package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// target is one kind of request the load generator sends.
type target struct {
	Name   string
	Method string
	Path   string // after /v1/
	Body   []byte // JSON, for POST
	Note   string // what it is, for the report
}

// loadClient sends requests to one Vault with keep-alive connections: one per
// concurrent worker, reused for the whole run.
type loadClient struct {
	addr  string
	token string
	http  *http.Client
}

func newLoadClient(addr, token string, maxConns int) *loadClient {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        maxConns + 16,
		MaxIdleConnsPerHost: maxConns + 16,
		IdleConnTimeout:     5 * time.Minute,
		DisableCompression:  true,
	}
	return &loadClient{addr: addr, token: token, http: &http.Client{Transport: tr, Timeout: 60 * time.Second}}
}

func (c *loadClient) close() { c.http.CloseIdleConnections() }

// do sends one request and returns the status and body.
func (c *loadClient) do(t target) (int, []byte, error) {
	var body io.Reader
	if t.Body != nil {
		body = bytes.NewReader(t.Body)
	}
	req, err := http.NewRequest(t.Method, c.addr+"/v1/"+t.Path, body)
	if err != nil {
		return 0, nil, err
	}
	// No token is how an app talks to a Proxy that forces its auto-auth token.
	if c.token != "" {
		req.Header.Set("X-Vault-Token", c.token)
	}
	if t.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// slice is one short closed-loop run of one engine at one concurrency.
type slice struct {
	lat                 []time.Duration // of the requests answered inside the window
	ok, errors          int             // whole run, warm-up included
	firstError          string
	elapsed             time.Duration // the measured window
	vaultCPU, pluginCPU time.Duration // CPU time used over the window
}

// cell is one engine at one concurrency in one round: the slices merged.
type cell struct {
	Requests   int // answered inside the measured windows
	OK         int // answered 200, warm-ups included
	Errors     int
	FirstError string
	Elapsed    time.Duration
	PerSec     float64
	P50, P99   time.Duration
	// CPU time per request of the Vault process and of the plugin process,
	// from /proc/<pid>/stat over the measured windows (0 when unknown).
	VaultCPU, PluginCPU time.Duration
}

func merge(slices []slice) cell {
	var (
		c   cell
		all []time.Duration
		v   time.Duration
		p   time.Duration
	)
	for _, s := range slices {
		all = append(all, s.lat...)
		c.OK += s.ok
		c.Errors += s.errors
		if c.FirstError == "" {
			c.FirstError = s.firstError
		}
		c.Elapsed += s.elapsed
		v += s.vaultCPU
		p += s.pluginCPU
	}
	sortDurations(all)
	c.Requests = len(all)
	if c.Elapsed > 0 {
		c.PerSec = float64(len(all)) / c.Elapsed.Seconds()
	}
	c.P50, c.P99 = percentile(all, 0.50), percentile(all, 0.99)
	if n := len(all); n > 0 {
		c.VaultCPU = v / time.Duration(n)
		c.PluginCPU = p / time.Duration(n)
	}
	return c
}

// cpuProbe samples a process's user+system CPU time.
type cpuProbe func() time.Duration

// run drives conc closed-loop workers at t: warm-up, then dur measured.
// Requests answered inside the measured window are counted.
func (c *loadClient) run(t target, conc int, warmup, dur time.Duration, vaultCPU, pluginCPU cpuProbe) slice {
	base := time.Now()
	var (
		winStart, winEnd atomic.Int64 // offsets from base; 0 = not yet
		stop             atomic.Bool
		wg               sync.WaitGroup
		ok, errs         atomic.Int64
		firstErr         atomic.Value
	)
	lat := make([][]time.Duration, conc)
	for w := 0; w < conc; w++ {
		lat[w] = make([]time.Duration, 0, 1024)
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for !stop.Load() {
				t0 := time.Since(base)
				status, body, err := c.do(t)
				t1 := time.Since(base)
				if err != nil || status != http.StatusOK {
					errs.Add(1)
					if err == nil {
						err = fmt.Errorf("HTTP %d: %.300s", status, body)
					}
					firstErr.CompareAndSwap(nil, err.Error())
					time.Sleep(10 * time.Millisecond)
					continue
				}
				ok.Add(1)
				// Throughput counts the answers that arrive inside the
				// window, whenever they were sent; so do the latencies.
				s, e := winStart.Load(), winEnd.Load()
				if s != 0 && int64(t1) >= s && (e == 0 || int64(t1) <= e) {
					lat[w] = append(lat[w], t1-t0)
				}
			}
		}(w)
	}
	time.Sleep(warmup)
	v0, p0 := probe(vaultCPU), probe(pluginCPU)
	winStart.Store(int64(time.Since(base)))
	time.Sleep(dur)
	winEnd.Store(int64(time.Since(base)))
	v1, p1 := probe(vaultCPU), probe(pluginCPU)
	stop.Store(true)
	wg.Wait()

	res := slice{ok: int(ok.Load()), errors: int(errs.Load()), elapsed: time.Duration(winEnd.Load() - winStart.Load()),
		vaultCPU: v1 - v0, pluginCPU: p1 - p0}
	for _, l := range lat {
		res.lat = append(res.lat, l...)
	}
	if v, ok := firstErr.Load().(string); ok {
		res.firstError = v
	}
	return res
}

// runCount sends n requests from conc workers and returns how many were
// answered 200 and the first error.
func (c *loadClient) runCount(t target, conc, n int) (int, error) {
	var (
		next, ok atomic.Int64
		wg       sync.WaitGroup
		firstErr atomic.Value
	)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				status, body, err := c.do(t)
				if err == nil && status != http.StatusOK {
					err = fmt.Errorf("HTTP %d: %.300s", status, body)
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if msg, _ := firstErr.Load().(string); msg != "" {
		return int(ok.Load()), errors.New(msg)
	}
	return int(ok.Load()), nil
}

func probe(p cpuProbe) time.Duration {
	if p == nil {
		return 0
	}
	return p()
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func sortDurations(d []time.Duration) { slices.Sort(d) }

// median of float64s (the middle one, or the mean of the two middle ones).
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func medianDuration(v []time.Duration) time.Duration {
	f := make([]float64, len(v))
	for i, d := range v {
		f[i] = float64(d)
	}
	return time.Duration(median(f))
}
