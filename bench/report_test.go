package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// goalRatio is the target: a cached token read through Vault costs at most
// this many times a KV v2 read of the same data.
const goalRatio = 1.5

func ms(d time.Duration) string {
	switch {
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/1e3)
	}
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }

func renderMatrix(w *strings.Builder, r *rig, m matrix, upstream int) {
	set := r.set
	fmt.Fprintf(w, "## 2. Through a real Vault: cached token read vs KV v2 and leased builtin engines\n\n")
	fmt.Fprintf(w, "One Vault dev server (in-memory storage, no audit device) on loopback, one run. Closed-loop clients with keep-alive connections, in one process on the same machine. "+
		"A cell (one engine at one concurrency) is measured for %v in %d slices of %v, each after %v of warm-up, the engines taking turns slice by slice (order rotated every slice) so that "+
		"changes in the machine's other load hit them alike; the whole matrix is run %d times and the figures are medians of the %d rounds. "+
		"CPU per read is the process's user+system time over the measured windows (/proc/<pid>/stat) divided by the reads.\n\n",
		set.duration, set.slices, set.duration/time.Duration(set.slices), set.warmup, m.rounds, m.rounds)
	fmt.Fprintf(w, "| engine | request | response body | what it is |\n|---|---|---|---|\n")
	for _, tg := range r.targets {
		fmt.Fprintf(w, "| %s | %s /v1/%s | %d B | %s |\n", tg.Name, tg.Method, tg.Path, r.sizes[tg.Name], tg.Note)
	}
	fmt.Fprintf(w, "\nThe KV secret holds exactly the token response's data (%d bytes of JSON); the KV v2 answer is larger only by its version metadata, the token answer by its lease fields.\n\n", r.sizes["data"])

	fmt.Fprintf(w, "| clients | engine | req/s | p50 | p99 | Vault CPU/read | plugin CPU/read |\n|---:|---|---:|---:|---:|---:|---:|\n")
	for _, conc := range concurrencies {
		for _, tg := range r.targets {
			plugin := "–"
			if _, ok := r.cpu[tg.Name]; ok {
				plugin = us(medianDuration(m.durations(tg.Name, conc, func(c cell) time.Duration { return c.PluginCPU })))
			}
			fmt.Fprintf(w, "| %d | %s | %.0f | %s | %s | %s | %s |\n", conc, tg.Name,
				median(m.perSec(tg.Name, conc)),
				ms(medianDuration(m.durations(tg.Name, conc, func(c cell) time.Duration { return c.P50 }))),
				ms(medianDuration(m.durations(tg.Name, conc, func(c cell) time.Duration { return c.P99 }))),
				us(medianDuration(m.durations(tg.Name, conc, func(c cell) time.Duration { return c.VaultCPU }))),
				plugin)
		}
	}

	fmt.Fprintf(w, "\n**Ratios to KV v2** (time per read: KV req/s ÷ engine req/s; latency: engine ÷ KV; CPU/read: (Vault + plugin CPU per wetix read) ÷ Vault CPU per KV read; goal for wetix: time and p50 ≤ %.1f at every concurrency).\n\n", goalRatio)
	fmt.Fprintf(w, "| clients | wetix/kv (req/s), per round | wetix/kv median | p50 wetix/kv | p99 wetix/kv | CPU/read wetix/kv | goal ≤ %.1f | floor/kv | wetix-status/kv | ssh-otp/kv | pki/kv | wetix/ssh-otp |\n", goalRatio)
	fmt.Fprintf(w, "|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|\n")
	allMet := true
	for _, conc := range concurrencies {
		kv := m.perSec("kv", conc)
		wx := m.perSec("wetix", conc)
		var per []string
		var perRound []float64
		for i := range kv {
			perRound = append(perRound, kv[i]/wx[i])
			per = append(per, fmt.Sprintf("%.2f", kv[i]/wx[i]))
		}
		ratio := median(perRound)
		p50 := lat(m, "wetix", conc, true) / lat(m, "kv", conc, true)
		p99 := lat(m, "wetix", conc, false) / lat(m, "kv", conc, false)
		met := ratio <= goalRatio && p50 <= goalRatio
		allMet = allMet && met
		verdict := "met"
		if !met {
			verdict = "**not met**"
		}
		cpu := medianRatio(m, conc, func(c cell) float64 { return float64(c.VaultCPU + c.PluginCPU) }, "wetix", "kv")
		fmt.Fprintf(w, "| %d | %s | %.2f | %.2f | %.2f | %.2f | %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", conc, strings.Join(per, " "), ratio, p50, p99, cpu, verdict,
			timeRatio(m, "floor", "kv", conc), timeRatio(m, "wetix-status", "kv", conc), timeRatio(m, "ssh-otp", "kv", conc), timeRatio(m, "pki", "kv", conc), timeRatio(m, "wetix", "ssh-otp", conc))
	}
	renderFloor(w, m)
	renderUnleased(w, m)
	renderSplit(w, m)
	fmt.Fprintf(w, "\nUpstream (WeTix emulator) calls during the %d measured-and-warm-up wetix reads of this section: %d (a cached read never calls WeTix).\n", totalOK(m, "wetix"), upstream)
	if allMet {
		fmt.Fprintf(w, "\nGoal (wetix within %.1fx of KV v2 at 1, 8 and 64 clients): **met**.\n\n", goalRatio)
	} else {
		fmt.Fprintf(w, "\nGoal (wetix within %.1fx of KV v2 at 1, 8 and 64 clients): **not met**; see \"Where the time goes\".\n\n", goalRatio)
	}
}

// medianRatio is the median over rounds of f(a)/f(b).
func medianRatio(m matrix, conc int, f func(cell) float64, a, b string) float64 {
	ca, cb := m.cells[a][conc], m.cells[b][conc]
	var v []float64
	for i := range ca {
		v = append(v, f(ca[i])/f(cb[i]))
	}
	return median(v)
}

func lat(m matrix, engine string, conc int, p50 bool) float64 {
	return float64(medianDuration(m.durations(engine, conc, func(c cell) time.Duration {
		if p50 {
			return c.P50
		}
		return c.P99
	})))
}

// timeRatio is how many times longer a read of a takes than one of b, from
// the per-round throughput ratios' median.
func timeRatio(m matrix, a, b string, conc int) float64 {
	ra, rb := m.perSec(a, conc), m.perSec(b, conc)
	var v []float64
	for i := range ra {
		v = append(v, rb[i]/ra[i])
	}
	return median(v)
}

func totalOK(m matrix, engine string) int {
	n := 0
	for _, cells := range m.cells[engine] {
		for _, c := range cells {
			n += c.OK
		}
	}
	return n
}

func renderBursts(w *strings.Builder, bs []burst) {
	fmt.Fprintf(w, "## 3. Upstream calls: N concurrent reads of a due token\n\n")
	fmt.Fprintf(w, "Mount wetix-due/ against a second emulator issuing %v access tokens, so the token is due (last 10%% of its life) %v after it is issued. "+
		"For each burst: N keep-alive connections are opened with reads of the fresh token, the benchmark polls wetix-due/status until the plugin reports refresh_due, "+
		"then releases N reads at once. The emulator holds the refresh for %v (a Delay fault), so every read arrives while it is in flight. "+
		"Upstream calls are the emulator's counters over the burst. %d bursts of each size, sizes interleaved; times are the median and all %d.\n\n",
		dueAccessTTL, dueAccessTTL*9/10, upstreamDelay, burstReps, burstReps)
	fmt.Fprintf(w, "| N | upstream calls, each burst | refresh / client_credentials, all bursts | distinct tokens served, each burst | all got the new token | time until all N answered (median) | each burst |\n|---:|---|---|---|---|---:|---|\n")
	ok := true
	for _, n := range burstSizes {
		var calls, distinct, times []string
		var d []time.Duration
		refresh, cc, allNew := 0, 0, true
		for _, b := range bs {
			if b.N != n {
				continue
			}
			ok = ok && b.Refresh+b.ClientCredentials == 1
			calls = append(calls, fmt.Sprint(b.Refresh+b.ClientCredentials))
			distinct = append(distinct, fmt.Sprint(b.DistinctTokens))
			times = append(times, ms(b.AllAnswered))
			d = append(d, b.AllAnswered)
			refresh += b.Refresh
			cc += b.ClientCredentials
			allNew = allNew && b.AllNew
		}
		fmt.Fprintf(w, "| %d | %s | %d / %d | %s | %s | %s | %s |\n", n, strings.Join(calls, ", "), refresh, cc,
			strings.Join(distinct, ", "), yes(allNew), ms(medianDuration(d)), strings.Join(times, ", "))
	}
	if ok {
		fmt.Fprintf(w, "\nGoal (exactly one upstream call per due token at every N): **met**.\n\n")
	} else {
		fmt.Fprintf(w, "\nGoal (exactly one upstream call per due token at every N): **not met**.\n\n")
	}
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func renderMemory(w *strings.Builder, r *rig, idle, after memory) {
	fmt.Fprintf(w, "## 4. Plugin process memory\n\n")
	fmt.Fprintf(w, "The plugin process (one, multiplexed over the mounts), from /proc/<pid>/status.\n\n")
	fmt.Fprintf(w, "| when | VmRSS | VmHWM (peak) |\n|---|---:|---:|\n")
	fmt.Fprintf(w, "| idle: mounted, configured, one token read | %s | %s |\n", mib(idle.RSS), mib(idle.HWM))
	fmt.Fprintf(w, "| after %d token reads of wetix/ | %s | %s |\n\n", r.wetixReads, mib(after.RSS), mib(after.HWM))
}

func renderColdStart(w *strings.Builder, cs []coldSample) {
	fmt.Fprintf(w, "## 5. Cold start\n\n")
	fmt.Fprintf(w, "From `vault secrets enable` (POST sys/mounts/<path>) to the first token served: enable, write config (pointing at the emulator), read the token "+
		"(one client-credentials grant). Each sample starts with no plugin process running (the previous mount was disabled and its process exited), so it includes starting the plugin.\n\n")
	fmt.Fprintf(w, "| sample | enable | config write | first token read | total | new plugin process |\n|---:|---:|---:|---:|---:|---|\n")
	var totals []time.Duration
	for i, c := range cs {
		totals = append(totals, c.Total)
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s |\n", i+1, ms(c.Enable), ms(c.Config), ms(c.FirstRead), ms(c.Total), yes(c.FreshProcess))
	}
	slices.Sort(totals)
	fmt.Fprintf(w, "\nMedian cold start: **%s**.\n\n", ms(medianDuration(totals)))
}

// floorExpected is how close to the floor a cached token read should come
// on a quiet machine: the engine's own work is a map lookup and a clock read.
const floorExpected = 1.05

// renderFloor compares the cached token read with the floor: the same
// leased answer from a plugin that does nothing else (bench/cmd/floor-plugin).
func renderFloor(w *strings.Builder, m matrix) {
	fmt.Fprintf(w, "\n**Distance from the floor** (floor: a bench-only plugin answering the same data as a leased, non-renewable secret and nothing else, with the engine's replication-state cache; "+
		"wetix/floor is what our code costs beyond what every external plugin with a lease pays; expected ≤ %.2f on a quiet machine, and this machine is shared: see the load average above).\n\n", floorExpected)
	fmt.Fprintf(w, "| clients | wetix/kv median | wetix/floor (req/s), per round | wetix/floor median | p50 wetix/floor | CPU/read wetix/floor | floor/kv | floor-nocache/floor (what the cache saves) |\n")
	fmt.Fprintf(w, "|---:|---:|---|---:|---:|---:|---:|---:|\n")
	cpu := func(c cell) float64 { return float64(c.VaultCPU + c.PluginCPU) }
	for _, conc := range concurrencies {
		fl, wx := m.perSec("floor", conc), m.perSec("wetix", conc)
		var per []string
		for i := range fl {
			per = append(per, fmt.Sprintf("%.2f", fl[i]/wx[i]))
		}
		fmt.Fprintf(w, "| %d | %.2f | %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", conc,
			timeRatio(m, "wetix", "kv", conc), strings.Join(per, " "), timeRatio(m, "wetix", "floor", conc),
			lat(m, "wetix", conc, true)/lat(m, "floor", conc, true), medianRatio(m, conc, cpu, "wetix", "floor"),
			timeRatio(m, "floor", "kv", conc), timeRatio(m, "floor-nocache", "floor", conc))
	}
	fmt.Fprintf(w, "\n%s\n", floorSummary(m))
}

// floorSummary is the one line to read: both ratios at every concurrency.
func floorSummary(m matrix) string {
	var kv, fl []string
	for _, conc := range concurrencies {
		kv = append(kv, fmt.Sprintf("%d: %.2f", conc, timeRatio(m, "wetix", "kv", conc)))
		fl = append(fl, fmt.Sprintf("%d: %.2f", conc, timeRatio(m, "wetix", "floor", conc)))
	}
	return fmt.Sprintf("Time per read by clients, wetix/kv %s; wetix/floor %s.", strings.Join(kv, ", "), strings.Join(fl, ", "))
}

// renderSplit splits a token read's cost by differences between engines, in
// machine time per read (1 / throughput): what a leased read through any
// external plugin adds to a KV read (the floor), what our code adds to that,
// and what the replication-state cache saves.
func renderSplit(w *strings.Builder, m matrix) {
	per := func(engine string, conc int) float64 { return 1e6 / median(m.perSec(engine, conc)) }
	fmt.Fprintf(w, "\n**Where a token read's time goes**, as differences of time per read (1/throughput, µs; from the medians above, so each difference carries the noise of two cells):\n\n")
	fmt.Fprintf(w, "| clients | KV v2 read | + a leased read through an external plugin (floor − kv) | + our token path (wetix − floor) | = wetix | the SDK's replication-state call, which the cache saves (floor-nocache − floor) |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, conc := range concurrencies {
		kv, fl, wx, nc := per("kv", conc), per("floor", conc), per("wetix", conc), per("floor-nocache", conc)
		fmt.Fprintf(w, "| %d | %.0f | %+.0f | %+.0f | %.0f | %+.0f |\n", conc, kv, fl-kv, wx-fl, wx, nc-fl)
	}
}
