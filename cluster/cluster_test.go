// Package cluster runs the plugin in a real three-node Vault HA cluster with
// integrated storage (raft) on loopback: one token for every node, one
// upstream refresh for a burst of reads spread over the cluster, and a kill -9
// of the active node that loses neither the token nor the refresh token.
//
// Vault OSS has no performance standbys: a standby forwards every request to
// the active node over the cluster port, so the active node's plugin process
// serves reads made through any node.
package cluster

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

const (
	clientID     = "cluster-client"
	clientSecret = "cluster-client-secret-value"
)

// raftParams keep failover short: performance_multiplier 1 gives raft's
// 1s heartbeat and election timeouts instead of 5s, and the fast autopilot
// loop promotes joining nodes to voters within seconds.
var raftParams = map[string]string{
	"performance_multiplier":       "1",
	"autopilot_reconcile_interval": "1s",
	"autopilot_update_interval":    "500ms",
}

// TestCluster starts one cluster and runs the scenarios on it in order, each
// on its own mount and WeTix emulator. Failover kills the active node, so it
// runs last.
func TestCluster(t *testing.T) {
	vaulttest.RequireLong(t)
	c := vaulttest.StartCluster(t, 3, raftParams)
	t.Run("SameTokenThroughEveryNode", func(t *testing.T) {
		vaulttest.RequireLong(t)
		testSameTokenThroughEveryNode(t, c)
	})
	t.Run("ConcurrentRefreshAcrossNodes", func(t *testing.T) {
		vaulttest.RequireLong(t)
		testConcurrentRefreshAcrossNodes(t, c)
	})
	t.Run("Failover", func(t *testing.T) {
		vaulttest.RequireLong(t)
		testFailover(t, c)
	})
}

// testSameTokenThroughEveryNode: a token read through each of the three
// nodes is the same token, obtained with one upstream call, and only the
// active node runs the plugin.
func testSameTokenThroughEveryNode(t *testing.T, c *vaulttest.Cluster) {
	emu := newEmulator(t, 0, nil)
	active, standbys := c.Leader(t)
	const path = "wetix-nodes"
	active.Mount(path, vaulttest.PluginVersion)
	vaulttest.Configure(t, active.Client, path, emu, nil)

	var tokens []string
	for _, n := range c.Alive() {
		tok, err := vaulttest.ReadToken(newClient(t, n.Addr, c.Token, 30*time.Second), path).Token()
		if err != nil {
			t.Fatalf("reading %s/token through %s: %v", path, n.Addr, err)
		}
		tokens = append(tokens, tok)
	}
	for i, tok := range tokens {
		if tok != tokens[0] {
			t.Fatalf("node %d served another access token than node 0", i)
		}
	}
	if !emu.IsAccessTokenValid(tokens[0]) {
		t.Fatal("the token served is not a valid access token of the emulator")
	}
	if tokens[0] != emu.LastIssued().AccessToken {
		t.Fatal("the token served is not the one the emulator issued last")
	}
	cc, rf := emu.Calls(wetixtest.GrantClientCredentials), emu.Calls(wetixtest.GrantRefresh)
	t.Logf("CLUSTER_NODES=%d SAME_TOKEN=true UPSTREAM_CALLS=%d (client_credentials=%d refresh_token=%d)", len(tokens), cc+rf, cc, rf)
	if cc+rf != 1 {
		t.Fatalf("upstream calls for %d reads through %d nodes: %d, want 1", len(tokens), len(tokens), cc+rf)
	}

	// The standbys forwarded: no plugin process runs there.
	if pids := active.PluginPIDs(); len(pids) == 0 {
		t.Fatalf("no plugin process under the active node %s", active.Addr)
	}
	for _, s := range standbys {
		if pids := s.PluginPIDs(); len(pids) != 0 {
			t.Fatalf("standby %s runs plugin processes %v; reads should have been forwarded to the active node", s.Addr, pids)
		}
	}
}

// testConcurrentRefreshAcrossNodes: when the token is due, 30 reads spread
// over the three nodes cause exactly one upstream refresh and all get the
// same new token.
func testConcurrentRefreshAcrossNodes(t *testing.T, c *vaulttest.Cluster) {
	const (
		accessTTL = 20 * time.Second // due in its last 10%: 18s after issue
		readers   = 30
	)
	calls := &callLog{}
	emu := newEmulator(t, accessTTL, calls.record)
	active, _ := c.Leader(t)
	const path = "wetix-burst"
	active.Mount(path, vaulttest.PluginVersion)
	vaulttest.Configure(t, active.Client, path, emu, nil)

	tok0, err := vaulttest.ReadToken(active.Client, path).Token()
	if err != nil {
		t.Fatalf("first read: %v", err)
	}
	base := emu.TotalCalls()
	if base != 1 {
		t.Fatalf("upstream calls after the first read: %d, want 1", base)
	}
	baseRefresh := emu.Calls(wetixtest.GrantRefresh)

	// Wait until the plugin itself says the token is due, then fire at once.
	waitStart := time.Now()
	deadline := waitStart.Add(2 * accessTTL)
	for {
		st, err := active.Client.Logical().Read(path + "/status")
		if err != nil {
			t.Fatalf("reading status: %v", err)
		}
		if due, _ := st.Data["refresh_due"].(bool); due {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the token never went due within %v: status %v", 2*accessTTL, st.Data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("token due after %.1fs", time.Since(waitStart).Seconds())

	nodes := c.Alive()
	clients := make([]*api.Client, len(nodes))
	for i, n := range nodes {
		clients[i] = newClient(t, n.Addr, c.Token, 30*time.Second)
	}
	var (
		wg     sync.WaitGroup
		start  = make(chan struct{})
		tokens = make([]string, readers)
		errs   = make([]error, readers)
	)
	for i := 0; i < readers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			tokens[i], errs[i] = vaulttest.ReadToken(clients[i%len(clients)], path).Token()
		}(i)
	}
	burstStart := time.Now()
	close(start)
	wg.Wait()
	burst := time.Since(burstStart)

	for i, err := range errs {
		if err != nil {
			t.Errorf("reader %d through %s: %v", i, nodes[i%len(nodes)].Addr, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	delta := emu.TotalCalls() - base
	refreshDelta := emu.Calls(wetixtest.GrantRefresh) - baseRefresh
	trigger := "reads"
	if at := calls.after(base); !at.IsZero() && at.Before(burstStart) {
		// Vault's rollback tick ran the periodic refresh between the status
		// poll and the burst; the burst then joined or followed it.
		trigger = "periodic"
	}
	t.Logf("CLUSTER_CONCURRENT_READS=%d UPSTREAM_CALLS=%d (refresh_token=%d) burst=%v trigger=%s", readers, delta, refreshDelta, burst.Round(time.Millisecond), trigger)
	if delta != 1 {
		t.Fatalf("upstream calls for %d concurrent reads of a due token: %d, want exactly 1", readers, delta)
	}
	if refreshDelta != 1 {
		t.Fatalf("the refresh was not a refresh grant (refresh_token calls +%d): the stored refresh token was not used", refreshDelta)
	}
	for i, tok := range tokens {
		if tok != tokens[0] {
			t.Fatalf("reader %d got another token than reader 0", i)
		}
	}
	if tokens[0] == tok0 {
		t.Fatal("the readers got the old, due token")
	}
	if tokens[0] != emu.LastIssued().AccessToken || !emu.IsAccessTokenValid(tokens[0]) {
		t.Fatal("the readers' token is not the valid token the emulator issued last")
	}
}

// testFailover: kill -9 the active node while a reader loop reads through
// the standbys. A new leader serves the token stored before the kill with
// no upstream call, and a forced rotate through it succeeds with the stored
// refresh token.
func testFailover(t *testing.T, c *vaulttest.Cluster) {
	const (
		path     = "wetix"
		interval = 50 * time.Millisecond
		// slack is how long reads may keep failing after a survivor names
		// the new leader: the new active node finishes taking over (mount
		// table, plugin start) and the other standby reconnects to it.
		slack = 3 * time.Second
	)
	emu := newEmulator(t, 0, nil)
	active, standbys := c.Leader(t)
	active.Mount(path, vaulttest.PluginVersion)
	vaulttest.Configure(t, active.Client, path, emu, nil)

	if _, err := vaulttest.ReadToken(active.Client, path).Token(); err != nil {
		t.Fatalf("first read: %v", err)
	}
	// A rotation first, so the refresh token in storage is a rotated one: the
	// emulator's refresh tokens are single use, and only the last one stored
	// is still live.
	active.MustCLI("write", "-f", path+"/rotate")
	before, err := vaulttest.ReadToken(active.Client, path).Token()
	if err != nil {
		t.Fatalf("read after rotate: %v", err)
	}
	last := emu.LastIssued()
	if before != last.AccessToken || last.Grant != wetixtest.GrantRefresh {
		t.Fatalf("before the kill the token served is not the one the pre-kill rotate got through the refresh grant (last grant %q)", last.Grant)
	}
	if !emu.IsRefreshTokenLive(last.RefreshToken) {
		t.Fatal("the refresh token issued by the pre-kill rotate is not live")
	}
	ccBefore, rfBefore := emu.Calls(wetixtest.GrantClientCredentials), emu.Calls(wetixtest.GrantRefresh)

	// The reader reads through the standbys, alternately.
	var clients []*api.Client
	for _, s := range standbys {
		clients = append(clients, newClient(t, s.Addr, c.Token, 5*time.Second))
	}
	r := startReader(clients, path, interval, 120*time.Second)
	t.Cleanup(r.stop)
	r.waitSuccesses(t, 6, time.Time{}, 30*time.Second)

	killAt := time.Now()
	active.Kill()
	c.MarkDead(active)
	t.Logf("killed the active node %s (process group)", active.Addr)

	newLeader, elected := waitNewLeader(t, c, standbys, active.Addr, killAt, 60*time.Second)
	election := elected.Sub(killAt)
	// Recovered: three successful reads through each survivor, after the
	// last failure.
	r.waitRecovered(t, len(clients), 3, 60*time.Second)
	r.stop()
	results := r.results()

	var (
		nFail, nOK   int
		maxLatency   time.Duration
		firstFailure time.Time
		firstErr     error
		// window: first failed read to the first successful read after it,
		// through any survivor. recovered: to the first successful read
		// after the last failure.
		window, recovered time.Duration
		// streak: the longest run of failures through one survivor, from
		// its first failed read to its next successful read.
		streak      time.Duration
		streaks     = make([]time.Duration, len(clients))
		streakStart = make([]time.Time, len(clients))
		lastFailure = -1
	)
	for i, res := range results {
		if res.err != nil {
			if res.end.Before(killAt) {
				t.Fatalf("read through %s failed before the kill: %v", standbys[res.client].Addr, res.err)
			}
			nFail++
			lastFailure = i
			if firstFailure.IsZero() {
				firstFailure, firstErr = res.start, res.err
			}
			if streakStart[res.client].IsZero() {
				streakStart[res.client] = res.start
			}
			continue
		}
		nOK++
		if res.token != before {
			t.Fatalf("read through %s at kill%+.2fs served another token than the one stored before the kill", standbys[res.client].Addr, res.start.Sub(killAt).Seconds())
		}
		if l := res.end.Sub(res.start); l > maxLatency {
			maxLatency = l
		}
		if !firstFailure.IsZero() && window == 0 {
			window = res.end.Sub(firstFailure)
		}
		if s := streakStart[res.client]; !s.IsZero() {
			d := res.end.Sub(s)
			if d > streak {
				streak = d
			}
			if d > streaks[res.client] {
				streaks[res.client] = d
			}
			streakStart[res.client] = time.Time{}
		}
	}
	if lastFailure >= 0 {
		for _, res := range results[lastFailure+1:] {
			if res.err == nil {
				recovered = res.end.Sub(firstFailure)
				break
			}
		}
	}
	t.Logf("FAILOVER_ERROR_WINDOW=%.2fs ELECTION=%.2fs", window.Seconds(), election.Seconds())
	t.Logf("failover reads=%d ok=%d failed=%d; all survivors serving %.2fs after the first failure; longest error streak through one survivor %.2fs; slowest successful read %.2fs; new leader %s",
		len(results), nOK, nFail, recovered.Seconds(), streak.Seconds(), maxLatency.Seconds(), newLeader.Addr)
	for i, d := range streaks {
		role := "standby"
		if standbys[i] == newLeader {
			role = "new leader"
		}
		t.Logf("longest error streak through %s (%s): %.2fs", standbys[i].Addr, role, d.Seconds())
	}
	if nFail > 0 {
		t.Logf("first failed read at kill%+.2fs: %v", firstFailure.Sub(killAt).Seconds(), firstErr)
	}
	if streak > election+slack || recovered > election+slack {
		t.Errorf("reads failed for up to %.2fs in a row through one survivor (%.2fs until all served), longer than the election (%.2fs) plus %v",
			streak.Seconds(), recovered.Seconds(), election.Seconds(), slack)
	}
	if maxLatency > election+slack {
		t.Errorf("a read took %.2fs, longer than the election (%.2fs) plus %v", maxLatency.Seconds(), election.Seconds(), slack)
	}

	// The new active node serves the token stored before the kill, without
	// an upstream call.
	got, err := vaulttest.ReadToken(newLeader.Client, path).Token()
	if err != nil {
		t.Fatalf("read through the new leader: %v", err)
	}
	if got != before {
		t.Fatal("the new leader serves another token than the one stored before the kill")
	}
	if cc, rf := emu.Calls(wetixtest.GrantClientCredentials), emu.Calls(wetixtest.GrantRefresh); cc != ccBefore || rf != rfBefore {
		t.Fatalf("upstream calls during failover: client_credentials %d->%d, refresh_token %d->%d; want none", ccBefore, cc, rfBefore, rf)
	}

	// The catalog entry and the mount reached the new leader through raft:
	// it was a standby when the plugin was registered and mounted, and now
	// reads them from its own storage and runs the plugin itself.
	pl, err := newLeader.Client.Sys().GetPlugin(&api.GetPluginInput{Name: vaulttest.CatalogName, Type: api.PluginTypeSecrets, Version: vaulttest.PluginVersion})
	if err != nil {
		t.Fatalf("reading the catalog on the new leader: %v", err)
	}
	if pl.SHA256 != c.Plugin.SHA256 || pl.Version != vaulttest.PluginVersion || pl.Command != c.Plugin.File {
		t.Fatalf("catalog entry on the new leader: sha256=%s version=%s command=%s; registered sha256=%s version=%s command=%s",
			pl.SHA256, pl.Version, pl.Command, c.Plugin.SHA256, vaulttest.PluginVersion, c.Plugin.File)
	}
	if pids := newLeader.PluginPIDs(); len(pids) == 0 {
		t.Fatalf("no plugin process under the new leader %s", newLeader.Addr)
	}

	// A forced rotate through the new leader uses the stored refresh token.
	newLeader.MustCLI("write", "-f", path+"/rotate")
	cc, rf := emu.Calls(wetixtest.GrantClientCredentials), emu.Calls(wetixtest.GrantRefresh)
	t.Logf("rotate through the new leader: refresh_token calls %d->%d, client_credentials calls %d->%d", rfBefore, rf, ccBefore, cc)
	if rf != rfBefore+1 || cc != ccBefore {
		t.Fatalf("rotate after failover: refresh_token calls +%d, client_credentials calls +%d; want +1 and +0 (the refresh token stored before the kill was lost)", rf-rfBefore, cc-ccBefore)
	}
	if emu.Successes(wetixtest.GrantRefresh) != rf {
		t.Fatal("a refresh grant failed upstream")
	}
	if emu.IsRefreshTokenLive(last.RefreshToken) {
		t.Fatal("the refresh token stored before the kill is still live after the rotate: it was not the one used")
	}
	st, err := newLeader.Client.Logical().Read(path + "/status")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.Data["last_grant"] != "refresh_token" || fmt.Sprint(st.Data["failures"]) != "0" || st.Data["healthy"] != true {
		t.Fatalf("status after the rotate: %v", st.Data)
	}
	after := emu.LastIssued().AccessToken
	for _, n := range c.Alive() {
		tok, err := vaulttest.ReadToken(newClient(t, n.Addr, c.Token, 30*time.Second), path).Token()
		if err != nil {
			t.Fatalf("read through %s after the rotate: %v", n.Addr, err)
		}
		if tok != after || tok == before {
			t.Fatalf("read through %s after the rotate does not serve the rotated token", n.Addr)
		}
	}
}

// waitNewLeader polls sys/leader on the survivors until one names a leader
// other than the killed node, and returns it and when it was first seen.
func waitNewLeader(t *testing.T, c *vaulttest.Cluster, survivors []*vaulttest.Server, killed string, since time.Time, timeout time.Duration) (*vaulttest.Server, time.Time) {
	t.Helper()
	clients := make([]*api.Client, len(survivors))
	for i, s := range survivors {
		clients[i] = newClient(t, s.Addr, c.Token, time.Second)
	}
	deadline := since.Add(timeout)
	for time.Now().Before(deadline) {
		for _, cl := range clients {
			l, err := cl.Sys().Leader()
			if err != nil || l.LeaderAddress == "" || l.LeaderAddress == killed {
				continue
			}
			seen := time.Now()
			for _, s := range survivors {
				if s.Addr == l.LeaderAddress {
					return s, seen
				}
			}
			t.Fatalf("sys/leader names %s, which is not a survivor", l.LeaderAddress)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no survivor named a new leader within %v of the kill", timeout)
	return nil, time.Time{}
}

// reader reads one mount's token through a set of clients in turn, every interval,
// until stopped or until its time is up.
type reader struct {
	mu   sync.Mutex
	res  []readResult
	quit chan struct{}
	once sync.Once
	done chan struct{}
}

type readResult struct {
	client     int
	start, end time.Time
	token      string
	err        error
}

func startReader(clients []*api.Client, mount string, interval, limit time.Duration) *reader {
	r := &reader{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		end := time.Now().Add(limit)
		for i := 0; time.Now().Before(end); i++ {
			n := i % len(clients)
			start := time.Now()
			tok, err := vaulttest.ReadToken(clients[n], mount).Token()
			res := readResult{client: n, start: start, end: time.Now(), token: tok, err: err}
			r.mu.Lock()
			r.res = append(r.res, res)
			r.mu.Unlock()
			select {
			case <-r.quit:
				return
			case <-time.After(time.Until(start.Add(interval))):
			}
		}
	}()
	return r
}

func (r *reader) stop() {
	r.once.Do(func() { close(r.quit) })
	<-r.done
}

func (r *reader) results() []readResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]readResult(nil), r.res...)
}

// waitSuccesses waits for n successful reads started after since.
func (r *reader) waitSuccesses(t *testing.T, n int, since time.Time, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ok := 0
		for _, res := range r.results() {
			if res.err == nil && !res.start.Before(since) {
				ok++
			}
		}
		if ok >= n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the reader did not get %d successful reads in %v: %s", n, timeout, r.summary())
}

// waitRecovered waits until each of the clients has n successful reads after
// the last failed read.
func (r *reader) waitRecovered(t *testing.T, clients, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		res := r.results()
		ok := make([]int, clients)
		for i := len(res) - 1; i >= 0 && res[i].err == nil; i-- {
			ok[res[i].client]++
		}
		recovered := true
		for _, k := range ok {
			recovered = recovered && k >= n
		}
		if recovered {
			return
		}
		select {
		case <-r.done:
			t.Fatalf("the reader stopped before reads recovered: %s", r.summary())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("reads did not recover within %v: %s", timeout, r.summary())
}

func (r *reader) summary() string {
	res := r.results()
	failed := 0
	var lastErr error
	for _, x := range res {
		if x.err != nil {
			failed++
			lastErr = x.err
		}
	}
	return fmt.Sprintf("%d reads, %d failed, last error: %v", len(res), failed, lastErr)
}

// callLog records when upstream grant calls arrive, in order.
type callLog struct {
	mu sync.Mutex
	at []time.Time
}

func (l *callLog) record(info wetixtest.RequestInfo) {
	if info.Grant == "" {
		return
	}
	// OnRequest runs after the answer; the call arrived Duration earlier.
	arrived := time.Now().Add(-info.Duration)
	l.mu.Lock()
	l.at = append(l.at, arrived)
	sort.Slice(l.at, func(i, j int) bool { return l.at[i].Before(l.at[j]) })
	l.mu.Unlock()
}

// after returns when call number n+1 arrived (the first after n calls), or
// the zero time.
func (l *callLog) after(n int) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n < len(l.at) {
		return l.at[n]
	}
	return time.Time{}
}

func newEmulator(t *testing.T, accessTTL time.Duration, onRequest func(wetixtest.RequestInfo)) *wetixtest.Server {
	t.Helper()
	emu := wetixtest.New(wetixtest.Options{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		AccessTTL:    accessTTL,
		OnRequest:    onRequest,
	})
	t.Cleanup(emu.Close)
	return emu
}

// newClient is a client of one node with its own timeout and no retries. It
// does not follow redirects: a standby that cannot forward a request answers
// 307 to the active node's address, and following it would hide whether the
// node the test chose served the request (itself or by forwarding).
func newClient(t *testing.T, addr, token string, timeout time.Duration) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	cfg.MaxRetries = 0
	cfg.Timeout = timeout
	cfg.DisableRedirects = true
	cl, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cl.SetToken(token)
	return cl
}
