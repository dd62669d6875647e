package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

const (
	benchClientID     = "bench-client"
	benchClientSecret = "bench-client-secret"
	// readsForRSS is how many token reads the plugin has served when its
	// memory is measured the second time.
	readsForRSS = 100_000
	// upstreamDelay is how long the emulator sits on the refresh of a due
	// token, so that every read of a burst arrives while it is in flight.
	upstreamDelay = 200 * time.Millisecond
	// dueAccessTTL is the emulator's access token life on the burst mount:
	// the token is due 10% before its end, 5.4s after it was issued.
	dueAccessTTL = 6 * time.Second
	// burstReps is how many bursts of each size are sent.
	burstReps = 3
)

var (
	concurrencies = []int{1, 8, 64}
	burstSizes    = []int{1, 10, 100, 1000}
)

type settings struct {
	duration, warmup time.Duration
	rounds, slices   int
	out, profile     string
}

func loadSettings(t testing.TB) settings {
	s := settings{duration: 1500 * time.Millisecond, warmup: 100 * time.Millisecond, rounds: 3, slices: 5,
		out: os.Getenv("WETIX_BENCH_OUT"), profile: os.Getenv("WETIX_BENCH_PROFILE")}
	for env, dst := range map[string]*time.Duration{"WETIX_BENCH_DURATION": &s.duration, "WETIX_BENCH_WARMUP": &s.warmup} {
		if v := os.Getenv(env); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				t.Fatalf("%s: %v", env, err)
			}
			*dst = d
		}
	}
	for env, dst := range map[string]*int{"WETIX_BENCH_ROUNDS": &s.rounds, "WETIX_BENCH_SLICES": &s.slices} {
		if v := os.Getenv(env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				t.Fatalf("%s=%q: want a positive integer", env, v)
			}
			*dst = n
		}
	}
	return s
}

// rig is one Vault dev server with the plugin registered, and the emulator
// the main mount talks to.
type rig struct {
	t       testing.TB
	set     settings
	srv     *vaulttest.Server
	plugin  vaulttest.Plugin
	emu     *wetixtest.Server
	load    *loadClient
	targets []target
	sizes   map[string]int // response body bytes per target
	// wetixReads counts token reads of the main mount, for the RSS figure.
	wetixReads int
	pluginPIDs []int
	vaultPID   int
	// cpu probes the plugin process serving each target, if any.
	cpu map[string]cpuProbe
	// floorBinary is bench/cmd/floor-plugin, built once.
	floorBinary string
}

// BenchmarkVault is the whole real-server benchmark, run once
// (-benchtime 1x) by scripts/bench.sh; plain `go test` never runs it. It
// measures with its own load generator rather than b.N, and fails only when
// something is wrong (an error answer, a second upstream call), never
// because a figure is slow.
func BenchmarkVault(t *testing.B) {
	set := loadSettings(t)
	r := newRig(t, set)
	var doc strings.Builder

	cold := r.coldStart()
	r.mountAll()

	idle := r.pluginMemory()
	t.Logf("plugin RSS idle: %s", mib(idle.RSS))

	upBefore := r.emu.TotalCalls()
	m := r.matrix()
	upDuring := r.emu.TotalCalls() - upBefore
	t.Logf("%s", floorSummary(m))
	t.Logf("%s", unleasedSummary(m))

	r.topUpReads()
	after := r.pluginMemory()
	t.Logf("plugin RSS after %d reads: %s (peak %s)", r.wetixReads, mib(after.RSS), mib(after.HWM))

	bursts := r.bursts()

	renderMatrix(&doc, r, m, upDuring)
	renderBursts(&doc, bursts)
	renderMemory(&doc, r, idle, after)
	renderColdStart(&doc, cold)

	if set.profile != "" {
		r.profile(set.profile)
	}
	if set.out == "" {
		fmt.Println(doc.String())
		return
	}
	if err := os.WriteFile(set.out, []byte(doc.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newRig(t testing.TB, set settings) *rig {
	dir := t.TempDir()
	r := &rig{t: t, set: set, sizes: map[string]int{}}
	r.plugin = pluginBinary(t, dir)
	r.emu = wetixtest.New(wetixtest.Options{ClientID: benchClientID, ClientSecret: benchClientSecret})
	t.Cleanup(r.emu.Close)
	r.srv = vaulttest.Start(t, vaulttest.Options{PluginDir: dir, LogLevel: "warn"})
	r.srv.RegisterPlugin(r.plugin)
	r.learnVersion()
	t.Logf("plugin version reported to Vault: %s", r.plugin.Version)
	r.load = newLoadClient(r.srv.Addr, r.srv.Token, 128)
	t.Cleanup(r.load.close)
	return r
}

// pluginBinary puts the plugin into the plugin directory: the binary `make
// build` produced when WETIX_PLUGIN_BINARY names it (what ships), else one
// built from source. Version is empty when the binary's own is not known.
func pluginBinary(t testing.TB, dir string) vaulttest.Plugin {
	src := os.Getenv("WETIX_PLUGIN_BINARY")
	if src == "" {
		return vaulttest.BuildPlugin(t, dir, vaulttest.PluginVersion)
	}
	if _, err := os.Stat(src); err != nil {
		t.Fatalf("WETIX_PLUGIN_BINARY: %v (run make build)", err)
	}
	return vaulttest.InstallPlugin(t, src, dir, vaulttest.BinaryName+"-bench", os.Getenv("WETIX_PLUGIN_VERSION"))
}

// learnVersion reads back the version Vault registered the plugin under:
// registered without one, Vault takes the version the plugin reports.
func (r *rig) learnVersion() {
	if r.plugin.Version == "" {
		r.plugin.Version = registeredVersion(r.t, r.srv)
	}
}

func (r *rig) write(path string, data map[string]interface{}) *api.Secret {
	r.t.Helper()
	s, err := r.srv.Client.Logical().Write(path, data)
	if err != nil {
		r.t.Fatalf("write %s: %v", path, err)
	}
	return s
}

func (r *rig) mountPlugin(path string) {
	r.t.Helper()
	r.srv.Mount(path, r.plugin.Version)
}

// vaultResponse is the part of Vault's JSON answer the benchmark looks at.
type vaultResponse struct {
	LeaseID       string                 `json:"lease_id"`
	LeaseDuration int                    `json:"lease_duration"`
	Data          map[string]interface{} `json:"data"`
}

// get sends one request through the load client and decodes the answer.
func (r *rig) get(c *loadClient, tg target) (vaultResponse, int) {
	r.t.Helper()
	status, body, err := c.do(tg)
	if err != nil || status != http.StatusOK {
		r.t.Fatalf("%s %s: %d %v %s", tg.Method, tg.Path, status, err, body)
	}
	var v vaultResponse
	if err := json.Unmarshal(body, &v); err != nil {
		r.t.Fatalf("%s: %v", tg.Path, err)
	}
	return v, len(body)
}

// ---- 5. cold start --------------------------------------------------------

type coldSample struct {
	Enable, Config, FirstRead, Total time.Duration
	FreshProcess                     bool // no plugin process ran before the enable
}

// coldStart enables a mount while no plugin process runs (the plugin is
// multiplexed: one process serves every mount, and it exits when the last
// one is disabled), configures it and reads a token, three times.
func (r *rig) coldStart() []coldSample {
	var out []coldSample
	for i := 0; i < 3; i++ {
		fresh := vaulttest.WaitFor(15*time.Second, func() bool { return len(r.srv.PluginPIDs()) == 0 })
		path := fmt.Sprintf("cold%d", i)
		t0 := time.Now()
		r.mountPlugin(path)
		t1 := time.Now()
		vaulttest.Configure(r.t, r.srv.Client, path, r.emu, nil)
		t2 := time.Now()
		r.get(r.load, target{Method: http.MethodGet, Path: path + "/token"})
		t3 := time.Now()
		s := coldSample{Enable: t1.Sub(t0), Config: t2.Sub(t1), FirstRead: t3.Sub(t2), Total: t3.Sub(t0), FreshProcess: fresh}
		r.t.Logf("cold start %d: total %v (enable %v, config %v, first read %v), fresh process %v", i+1, s.Total, s.Enable, s.Config, s.FirstRead, fresh)
		out = append(out, s)
		if err := r.srv.Client.Sys().Unmount(path); err != nil {
			r.t.Fatal(err)
		}
	}
	return out
}

// ---- setup of the engines compared ----------------------------------------

// mountAll mounts the plugin at wetix/ and the engines it is compared with,
// and fixes the KV secret to the token response's own data.
func (r *rig) mountAll() {
	sys := r.srv.Client.Sys()
	r.mountPlugin("wetix")
	vaulttest.Configure(r.t, r.srv.Client, "wetix", r.emu, nil)
	wetix := target{Name: "wetix", Method: http.MethodGet, Path: "wetix/token",
		Note: "this plugin: cached token, leased (lease written per read)"}
	tok, size := r.get(r.load, wetix)
	r.wetixReads++
	if tok.LeaseID == "" {
		r.t.Fatal("wetix/token answered without a lease")
	}
	r.sizes[wetix.Name] = size

	// KV v2 (secret/ on a dev server) holds exactly the token's data.
	r.write("secret/data/x", map[string]interface{}{"data": tok.Data})
	kv := target{Name: "kv", Method: http.MethodGet, Path: "secret/data/x",
		Note: "KV v2 read of the same data (no lease)"}

	// The floor: the cheapest leased read of an external plugin, answering
	// the same data, with and without the engine's replication-state cache.
	floor := r.mountFloor("floor", "floor", tok.Data, true,
		"the floor: bench/cmd/floor-plugin, constant data as a leased non-renewable secret, with the engine's replication-state cache")
	floorNoCache := r.mountFloor("floor-nocache", "floor-nc", tok.Data, false,
		"the same floor plugin without the cache: the SDK asks Vault for the replication state on every request")

	// The unleased read of the same token (issue 18), and its floor: the
	// floor plugin answering the static-token data without a lease.
	static := target{Name: "wetix-static", Method: http.MethodGet, Path: "wetix/static-token",
		Note: "this plugin, unleased read of the same cached token (static-token: no lease, nothing written)"}
	st, size := r.get(r.load, static)
	r.sizes[static.Name] = size
	floorUnleased := r.mountFloor("floor-unleased", "floor-ul", st.Data, true,
		"the unleased floor: bench/cmd/floor-plugin -unleased, the static-token data without a lease, with the engine's replication-state cache", "-unleased")

	status := target{Name: "wetix-status", Method: http.MethodGet, Path: "wetix/status",
		Note: "this plugin, status path: same plugin round trip, no lease"}

	// ssh OTP: a builtin engine whose credential read registers a real lease
	// and writes one small storage entry, with no outside service.
	if err := sys.Mount("ssh", &api.MountInput{Type: "ssh"}); err != nil {
		r.t.Fatal(err)
	}
	r.write("ssh/roles/otp", map[string]interface{}{"key_type": "otp", "default_user": "bench", "cidr_list": "127.0.0.0/8"})
	ssh := target{Name: "ssh-otp", Method: http.MethodPost, Path: "ssh/creds/otp", Body: []byte(`{"ip":"127.0.0.1"}`),
		Note: "builtin ssh engine, OTP credential: leased, one storage write"}

	// pki with generate_lease: leased, but every read also generates an EC
	// P-256 key, signs and stores a certificate.
	if err := sys.Mount("pki", &api.MountInput{Type: "pki", Config: api.MountConfigInput{MaxLeaseTTL: "87600h"}}); err != nil {
		r.t.Fatal(err)
	}
	r.write("pki/root/generate/internal", map[string]interface{}{"common_name": "bench root", "key_type": "ec", "key_bits": 256, "ttl": "87600h"})
	r.write("pki/roles/bench", map[string]interface{}{"allow_any_name": true, "key_type": "ec", "key_bits": 256, "generate_lease": true, "ttl": "1h"})
	pki := target{Name: "pki", Method: http.MethodPost, Path: "pki/issue/bench", Body: []byte(`{"common_name":"bench.example"}`),
		Note: "builtin pki issue, generate_lease=true, EC P-256: leased, keygen + signing + stored cert"}

	for _, tg := range []target{kv, floor, floorNoCache, static, floorUnleased, status, ssh, pki} {
		v, size := r.get(r.load, tg)
		r.sizes[tg.Name] = size
		leased := !slices.Contains([]string{"kv", "wetix-status", "wetix-static", "floor-unleased"}, tg.Name)
		if (v.LeaseID != "") != leased {
			r.t.Fatalf("%s: lease_id %q, want leased=%v", tg.Name, v.LeaseID, leased)
		}
	}
	kvData, _ := json.Marshal(tok.Data)
	r.t.Logf("token data JSON: %d bytes; response bodies: %v", len(kvData), r.sizes)
	r.sizes["data"] = len(kvData)
	r.targets = []target{kv, wetix, floor, floorNoCache, static, floorUnleased, status, ssh, pki}

	r.pluginPIDs = r.srv.PluginPIDs()
	if len(r.pluginPIDs) == 0 {
		r.t.Fatal("no plugin process found")
	}
	ppid, err := parentPID(r.pluginPIDs[0])
	if err != nil {
		r.t.Fatal(err)
	}
	r.vaultPID = ppid
	r.cpu = map[string]cpuProbe{wetix.Name: cpuOf(r.pluginPIDs...), status.Name: cpuOf(r.pluginPIDs...), static.Name: cpuOf(r.pluginPIDs...)}
	for _, tg := range []target{floor, floorNoCache, floorUnleased} {
		pid := findProcess(ppid, tg.Name)
		if pid == 0 {
			r.t.Fatalf("no %s plugin process under Vault", tg.Name)
		}
		r.cpu[tg.Name] = cpuOf(pid)
	}
}

// mountFloor builds bench/cmd/floor-plugin once, installs it as the file
// name (a process is found by its executable's name), registers it as the
// catalog entry name answering data, and mounts it at path.
func (r *rig) mountFloor(name, path string, data map[string]interface{}, cache bool, note string, args ...string) target {
	r.t.Helper()
	if r.floorBinary == "" {
		r.floorBinary = filepath.Join(r.t.TempDir(), "floor-plugin")
		vaulttest.GoBuild(r.t, "./bench/cmd/floor-plugin", r.floorBinary, "")
	}
	raw, err := json.Marshal(data)
	if err != nil {
		r.t.Fatal(err)
	}
	p := vaulttest.InstallPlugin(r.t, r.floorBinary, r.plugin.Dir, name, "")
	p.Name, p.Args = name, []string{"-data=" + string(raw)}
	if cache {
		p.Args = append(p.Args, "-cache-replication-state")
	}
	p.Args = append(p.Args, args...)
	r.srv.RegisterPlugin(p)
	if err := r.srv.Client.Sys().Mount(path, &api.MountInput{Type: name}); err != nil {
		r.t.Fatal(err)
	}
	return target{Name: name, Method: http.MethodGet, Path: path + "/token", Note: note}
}

// findProcess returns the child of parent whose executable is named name,
// or 0.
func findProcess(parent int, name string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, err := parentPID(pid); err != nil || pp != parent {
			continue
		}
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); filepath.Base(exe) == name {
			return pid
		}
	}
	return 0
}

// ---- 2. throughput and latency ---------------------------------------------

// matrix holds cells[engine][concurrency] across rounds.
type matrix struct {
	rounds int
	cells  map[string]map[int][]cell
}

// matrix runs every engine at every concurrency, rounds times. Within a
// round and a concurrency, the engines take turns in short slices (the order
// rotated every slice), so that a change in the machine's other load hits all
// of them alike; a cell is its slices merged.
func (r *rig) matrix() matrix {
	m := matrix{rounds: r.set.rounds, cells: map[string]map[int][]cell{}}
	for _, tg := range r.targets {
		m.cells[tg.Name] = map[int][]cell{}
	}
	vaultCPU := cpuOf(r.vaultPID)
	sliceDur := r.set.duration / time.Duration(r.set.slices)
	for round := 0; round < r.set.rounds; round++ {
		for _, conc := range concurrencies {
			got := map[string][]slice{}
			for sl := 0; sl < r.set.slices; sl++ {
				for i := range r.targets {
					tg := r.targets[(i+sl+round)%len(r.targets)]
					got[tg.Name] = append(got[tg.Name], r.load.run(tg, conc, r.set.warmup, sliceDur, vaultCPU, r.cpu[tg.Name]))
				}
			}
			for _, tg := range r.targets {
				c := merge(got[tg.Name])
				if c.Errors > 0 {
					r.t.Fatalf("%s at %d clients: %d errors, first: %s", tg.Name, conc, c.Errors, c.FirstError)
				}
				if tg.Name == "wetix" {
					r.wetixReads += c.OK
				}
				m.cells[tg.Name][conc] = append(m.cells[tg.Name][conc], c)
				r.t.Logf("round %d, %2d clients, %-16s %6.0f req/s  p50 %-9s p99 %-9s Vault %s/read, plugin %s/read",
					round+1, conc, tg.Name, c.PerSec, ms(c.P50), ms(c.P99), us(c.VaultCPU), us(c.PluginCPU))
			}
		}
	}
	return m
}

func (m matrix) perSec(engine string, conc int) []float64 {
	var v []float64
	for _, c := range m.cells[engine][conc] {
		v = append(v, c.PerSec)
	}
	return v
}

func (m matrix) durations(engine string, conc int, f func(cell) time.Duration) []time.Duration {
	var v []time.Duration
	for _, c := range m.cells[engine][conc] {
		v = append(v, f(c))
	}
	return v
}

// ---- 4. memory ---------------------------------------------------------------

func (r *rig) pluginMemory() memory {
	r.t.Helper()
	pids := r.srv.PluginPIDs()
	if len(pids) != 1 || pids[0] != r.pluginPIDs[0] {
		r.t.Fatalf("plugin processes %v, want just %v: did the plugin restart?", pids, r.pluginPIDs)
	}
	m, err := memoryOf(pids)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

// topUpReads reads the token until the plugin has served readsForRSS reads.
func (r *rig) topUpReads() {
	if n := readsForRSS - r.wetixReads; n > 0 {
		start := time.Now()
		ok, err := r.load.runCount(r.targets[1], 32, n)
		if err != nil {
			r.t.Fatalf("top-up reads: %v", err)
		}
		r.wetixReads += ok
		r.t.Logf("topped up with %d reads in %v", ok, time.Since(start).Round(time.Millisecond))
	}
}

// ---- 3. upstream calls for a due token -------------------------------------

type burst struct {
	N                 int
	ClientCredentials int
	Refresh           int
	DistinctTokens    int
	AllNew            bool
	AllAnswered       time.Duration
	Fastest, Slowest  time.Duration
}

// bursts mounts wetix-due/ against an emulator issuing short-lived access
// tokens, waits until the token is due (its last 10%), and sends N reads at
// once while the emulator holds the refresh for upstreamDelay; burstReps
// times for each N.
func (r *rig) bursts() []burst {
	emu := wetixtest.New(wetixtest.Options{ClientID: benchClientID, ClientSecret: benchClientSecret, AccessTTL: dueAccessTTL})
	defer emu.Close()
	r.mountPlugin("wetix-due")
	// A 2s lease ttl: the leases of one burst expire long before the next,
	// so their revocation does not overlap a measured burst.
	vaulttest.Configure(r.t, r.srv.Client, "wetix-due", emu, map[string]interface{}{"ttl": "2s"})
	tokenTarget := target{Method: http.MethodGet, Path: "wetix-due/token"}
	statusTarget := target{Method: http.MethodGet, Path: "wetix-due/status"}
	r.get(r.load, tokenTarget) // first token: the client-credentials grant
	calls := func() (int, int) {
		return emu.Calls(wetixtest.GrantClientCredentials), emu.Calls(wetixtest.GrantRefresh)
	}

	var out []burst
	for rep := 0; rep < burstReps; rep++ {
		for _, n := range burstSizes {
			for attempt := 0; ; attempt++ {
				b, ok := r.burst(n, emu, tokenTarget, statusTarget, calls)
				if ok {
					out = append(out, b)
					break
				}
				if attempt == 2 {
					r.t.Fatalf("burst of %d: the periodic refresh beat the burst 3 times", n)
				}
			}
		}
	}
	return out
}

// burst runs one burst; ok is false when something other than the burst
// refreshed the token first (Vault's periodic tick), and it must be redone.
func (r *rig) burst(n int, emu *wetixtest.Server, tokenTarget, statusTarget target, calls func() (int, int)) (burst, bool) {
	c := newLoadClient(r.srv.Addr, r.srv.Token, n)
	defer c.close()
	// One keep-alive connection per reader, opened while the token is fresh.
	var wg sync.WaitGroup
	old := make([]string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v, _ := r.get(c, tokenTarget)
			old[i], _ = v.Data["access_token"].(string)
		}(i)
	}
	wg.Wait()
	oldTokens := map[string]bool{}
	for _, tok := range old {
		oldTokens[tok] = true
	}

	// Wait until the plugin itself says the token is due.
	waitStart := time.Now()
	for {
		v, _ := r.get(r.load, statusTarget)
		if due, _ := v.Data["refresh_due"].(bool); due {
			break
		}
		if time.Since(waitStart) > 2*dueAccessTTL {
			r.t.Fatal("the token never became due")
		}
		time.Sleep(20 * time.Millisecond)
	}

	emu.Fault(wetixtest.Fault{Delay: upstreamDelay, Process: true})
	defer emu.ClearFaults()
	cc0, rf0 := calls()

	type answer struct {
		token string
		took  time.Duration
	}
	answers := make([]answer, n)
	gate := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-gate
			t0 := time.Now()
			v, _ := r.get(c, tokenTarget)
			answers[i].took = time.Since(t0)
			answers[i].token, _ = v.Data["access_token"].(string)
		}(i)
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	all := time.Since(start)
	cc1, rf1 := calls()

	b := burst{N: n, ClientCredentials: cc1 - cc0, Refresh: rf1 - rf0, AllAnswered: all, AllNew: true, Fastest: answers[0].took}
	distinct := map[string]bool{}
	for _, a := range answers {
		distinct[a.token] = true
		if oldTokens[a.token] {
			b.AllNew = false
		}
		b.Fastest = min(b.Fastest, a.took)
		b.Slowest = max(b.Slowest, a.took)
	}
	b.DistinctTokens = len(distinct)
	if b.ClientCredentials+b.Refresh == 0 && len(distinct) == 1 && b.AllNew {
		// Refreshed between the due check and the burst: not a measurement.
		r.t.Logf("burst of %d: token refreshed before the burst (periodic tick); redoing it", n)
		return b, false
	}
	r.t.Logf("burst of %d: upstream client_credentials=%d refresh=%d, %d distinct token(s), all new %v, all answered in %v (slowest %v)",
		n, b.ClientCredentials, b.Refresh, b.DistinctTokens, b.AllNew, all, b.Slowest)
	if b.ClientCredentials+b.Refresh != 1 {
		r.t.Errorf("burst of %d reads of a due token made %d upstream calls, want 1", n, b.ClientCredentials+b.Refresh)
	}
	return b, true
}

// ---- Vault CPU profile -------------------------------------------------------

// profile saves 5s CPU profiles of Vault (sys/pprof, root token) while 8
// clients read wetix/token, then kv, to dir/vault-<engine>.pprof.
func (r *rig) profile(dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.t.Fatal(err)
	}
	for _, tg := range []target{r.targets[1], r.targets[0]} {
		done := make(chan struct{})
		var prof []byte
		var perr error
		go func() {
			defer close(done)
			prof, perr = r.pprof(5)
		}()
		c := merge([]slice{r.load.run(tg, 8, 0, 5500*time.Millisecond, nil, nil)})
		<-done
		if perr != nil {
			r.t.Fatalf("sys/pprof: %v", perr)
		}
		path := filepath.Join(dir, "vault-"+tg.Name+".pprof")
		if err := os.WriteFile(path, prof, 0o644); err != nil {
			r.t.Fatal(err)
		}
		r.t.Logf("Vault CPU profile under %s reads (%.0f req/s): %s", tg.Name, c.PerSec, path)
	}
}

func (r *rig) pprof(seconds int) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+30)*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/v1/sys/pprof/profile?seconds=%d", r.srv.Addr, seconds), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Vault-Token", r.srv.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, b)
	}
	return b, err
}
