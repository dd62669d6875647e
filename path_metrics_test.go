package wetix

import (
	"context"
	"math/rand"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/metricstest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

const testMount = "wetix/"

// scrape reads the metrics path as Vault routes a GET of /v1/wetix/metrics,
// checks the raw HTTP answer and parses its body as Prometheus would.
func (h *harness) scrape() (metricstest.Families, []byte) {
	h.t.Helper()
	return h.scrapeMount(testMount)
}

func (h *harness) scrapeMount(mount string) (metricstest.Families, []byte) {
	h.t.Helper()
	resp, err := h.b.HandleRequest(context.Background(), &logical.Request{
		Operation:  logical.ReadOperation,
		Path:       "metrics",
		MountPoint: mount,
		Storage:    h.storage,
	})
	if err != nil || resp == nil || resp.IsError() {
		h.t.Fatalf("reading metrics: resp=%v err=%v", resp, err)
	}
	if code := resp.Data[logical.HTTPStatusCode]; code != http.StatusOK {
		h.t.Fatalf("metrics status code %v, want 200", code)
	}
	if ct := resp.Data[logical.HTTPContentType]; ct != metricstest.ContentType {
		h.t.Fatalf("metrics content type %q, want %q", ct, metricstest.ContentType)
	}
	body, ok := resp.Data[logical.HTTPRawBody].([]byte)
	if !ok {
		h.t.Fatalf("metrics body is %T, want []byte", resp.Data[logical.HTTPRawBody])
	}
	return metricstest.Parse(h.t, body), body
}

func mount(extra ...string) []string { return append([]string{"mount", testMount}, extra...) }

// want checks samples by name (labels: the mount only).
func wantMetrics(t *testing.T, m metricstest.Families, want map[string]float64) {
	t.Helper()
	for name, v := range want {
		if got := m.MustValue(t, name, mount()...); got != v {
			t.Errorf("%s = %v, want %v", name, got, v)
		}
	}
}

func wantNoSample(t *testing.T, m metricstest.Families, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, ok := m.Value(name, mount()...); ok {
			t.Errorf("%s has a sample; want none: %s", name, m.Series(name))
		}
	}
}

// wantFailing checks the failure-kind state set: kind at 1 and every other
// kind at 0; kind "" means no kind at 1.
func wantFailing(t *testing.T, m metricstest.Families, kind string) {
	t.Helper()
	for _, k := range failureKinds {
		want := boolValue(k.label == kind)
		if got := m.MustValue(t, "wetix_refresh_failing", mount("kind", k.label)...); got != want {
			t.Errorf("wetix_refresh_failing{kind=%q} = %v, want %v", k.label, got, want)
		}
	}
}

func TestMetricsBeforeConfig(t *testing.T) {
	h := newHarness(t)
	m, _ := h.scrape()
	wantMetrics(t, m, map[string]float64{"wetix_configured": 0, "wetix_healthy": 0})
	wantNoSample(t, m, "wetix_refreshes_total", "wetix_access_token_remaining_seconds", "wetix_refresh_due")
}

// TestMetricsFollowALifecycle walks a mount through the client-credentials
// grant, a refresh grant, an outage with stale serves, a rejected secret and
// a recovery, and reads every metric as Prometheus would after each step.
func TestMetricsFollowALifecycle(t *testing.T) {
	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	m, _ := h.scrape()
	wantMetrics(t, m, map[string]float64{
		"wetix_configured": 1, "wetix_healthy": 1, "wetix_refresh_due": 1, "wetix_refresh_failures_total": 0,
		"wetix_stale_serves_total": 0, "wetix_refresh_token_usable": 0,
	})
	wantNoSample(t, m, "wetix_access_token_remaining_seconds", "wetix_access_token_served_remaining_seconds",
		"wetix_refresh_token_remaining_seconds", "wetix_last_refresh_timestamp_seconds", "wetix_last_refresh_failure_timestamp_seconds")
	wantFailing(t, m, "")

	// The first read: the client-credentials grant. The emulator gives 1h
	// and 24h; the client keeps a second's margin.
	t0 := h.clock.Now()
	h.readToken()
	m, body := h.scrape()
	wantMetrics(t, m, map[string]float64{
		"wetix_healthy": 1, "wetix_refresh_due": 0, "wetix_refresh_token_usable": 1,
		"wetix_access_token_remaining_seconds":  3599,
		"wetix_refresh_token_remaining_seconds": 86399,
		"wetix_last_refresh_timestamp_seconds":  float64(t0.Unix()),
	})
	if cc, rt := m.MustValue(t, "wetix_refreshes_total", mount("grant", "client_credentials")...),
		m.MustValue(t, "wetix_refreshes_total", mount("grant", "refresh_token")...); cc != 1 || rt != 0 {
		t.Fatalf("after the first read: refreshes client_credentials=%v refresh_token=%v, want 1 and 0", cc, rt)
	}
	h.wantNoSecretIn(body)
	wantServedRemainingMatchesStatus(t, h, m, time.Minute)

	// Into the refresh window: due, and the clock shows in the expiry.
	h.clock.Advance(55 * time.Minute)
	m, _ = h.scrape()
	wantMetrics(t, m, map[string]float64{"wetix_refresh_due": 1, "wetix_access_token_remaining_seconds": 299})

	// The next read refreshes through the refresh grant.
	t1 := h.clock.Now()
	h.readToken()
	m, _ = h.scrape()
	wantMetrics(t, m, map[string]float64{
		"wetix_refresh_due": 0, "wetix_access_token_remaining_seconds": 3599,
		"wetix_last_refresh_timestamp_seconds": float64(t1.Unix()),
	})
	if rt := m.MustValue(t, "wetix_refreshes_total", mount("grant", "refresh_token")...); rt != 1 {
		t.Fatalf("after a refresh: refreshes{grant=refresh_token} = %v, want 1", rt)
	}

	// An outage: WeTix answers 503. Three reads get the current token with
	// a warning.
	h.clock.Advance(55 * time.Minute)
	t2 := h.clock.Now()
	h.wetix.Fault(wetixtest.FaultStatus(http.StatusServiceUnavailable, ""))
	for i := 0; i < 3; i++ {
		if resp := h.readToken(); len(resp.Warnings) == 0 {
			t.Fatalf("read %d in the outage has no warning", i)
		}
		h.b.tokens.background.Wait()
	}
	h.tick() // stale serves are reported once stored
	m, _ = h.scrape()
	wantMetrics(t, m, map[string]float64{
		"wetix_healthy": 0, "wetix_refresh_due": 1, "wetix_stale_serves_total": 3,
		"wetix_last_refresh_failure_timestamp_seconds": float64(t2.Unix()),
		"wetix_last_refresh_timestamp_seconds":         float64(t1.Unix()),
		"wetix_access_token_remaining_seconds":         299,
	})
	wantFailing(t, m, "transient")
	wantServedRemainingMatchesStatus(t, h, m, time.Minute)
	failures := m.MustValue(t, "wetix_refresh_failures_total", mount()...)
	if status := h.status()["failures"].(uint64); failures < 1 || failures != float64(status) {
		t.Fatalf("failures_total = %v during the outage; status says %d", failures, status)
	}

	// WeTix now rejects the client secret: the kind changes.
	h.wetix.ClearFaults()
	h.wetix.Fault(wetixtest.FaultInvalidClient())
	h.clock.Advance(time.Minute)
	if resp, err := h.request(logical.UpdateOperation, "rotate", nil); err == nil && !resp.IsError() {
		t.Fatal("rotate succeeded against a WeTix that rejects the client")
	}
	m, _ = h.scrape()
	wantFailing(t, m, "invalid_client")
	if got := m.MustValue(t, "wetix_refresh_failures_total", mount()...); got <= failures {
		t.Fatalf("failures_total %v after another failure, was %v", got, failures)
	}
	var sum float64
	for _, k := range failureKinds {
		sum += m.MustValue(t, "wetix_refresh_failures_by_kind_total", mount("kind", k.label)...)
	}
	if ic := m.MustValue(t, "wetix_refresh_failures_by_kind_total", mount("kind", "invalid_client")...); ic != 1 || sum != m.MustValue(t, "wetix_refresh_failures_total", mount()...) {
		t.Fatalf("failures by kind: invalid_client %v, sum %v, want 1 and the total", ic, sum)
	}

	// Recovery: healthy again, nothing failing, the counters kept.
	h.wetix.ClearFaults()
	t3 := h.clock.Now()
	h.readToken()
	m, body = h.scrape()
	wantMetrics(t, m, map[string]float64{
		"wetix_healthy": 1, "wetix_refresh_due": 0, "wetix_stale_serves_total": 3,
		"wetix_last_refresh_timestamp_seconds": float64(t3.Unix()),
	})
	wantFailing(t, m, "")
	h.wantNoSecretIn(body)
}

func (h *harness) wantNoSecretIn(body []byte) {
	h.t.Helper()
	issued := h.wetix.LastIssued()
	for _, secret := range []string{"s3cret-client-secret-value", issued.AccessToken, issued.RefreshToken} {
		if secret != "" && strings.Contains(string(body), secret) {
			h.t.Fatalf("the metrics hold a secret:\n%s", body)
		}
	}
}

// TestMetricsAgreeWithStatus runs a random schedule of reads, rotations,
// ticks, faults and clock moves, and after every step checks that the
// metrics say what status says, that counters never go down, and that at
// most one failure kind is set, exactly when the last refresh failed.
func TestMetricsAgreeWithStatus(t *testing.T) {
	seed := time.Now().UnixNano()
	if s := os.Getenv("WETIX_METRICS_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (rerun with WETIX_METRICS_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewSource(seed))

	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	faults := []wetixtest.Fault{
		wetixtest.FaultStatus(http.StatusServiceUnavailable, ""),
		wetixtest.FaultInvalidClient(),
		wetixtest.FaultInvalidGrant().For(wetixtest.GrantRefresh),
	}
	counters := map[string]float64{}
	seen := map[string]int{} // what the schedule reached, for the log
	for step := 0; step < 200; step++ {
		var op string
		switch rng.Intn(8) {
		case 0:
			d := time.Duration(rng.Intn(40)) * time.Minute
			h.clock.Advance(d)
			op = "advance " + d.String()
		case 1:
			h.request(logical.UpdateOperation, "rotate", nil)
			op = "rotate"
		case 2:
			h.tick()
			op = "tick"
		case 3:
			f := faults[rng.Intn(len(faults))]
			h.wetix.ClearFaults()
			h.wetix.Fault(f)
			op = "fault " + strconv.Itoa(f.Status)
		case 4:
			h.wetix.ClearFaults()
			op = "clear faults"
		default:
			h.request(logical.ReadOperation, "token", nil)
			op = "read"
		}
		h.b.tokens.background.Wait()

		m, body := h.scrape()
		st := h.status()
		now := h.clock.Now()
		where := "step " + strconv.Itoa(step) + " (" + op + ")"
		check := func(name string, got, want float64) {
			t.Helper()
			if got != want {
				t.Fatalf("%s: %s = %v, status says %v\n%s", where, name, got, want, body)
			}
		}
		value := func(name string, labels ...string) float64 { return m.MustValue(t, name, mount(labels...)...) }
		check("wetix_healthy", value("wetix_healthy"), boolValue(st["healthy"].(bool)))
		check("wetix_refresh_due", value("wetix_refresh_due"), boolValue(st["refresh_due"].(bool)))
		check("wetix_refresh_token_usable", value("wetix_refresh_token_usable"), boolValue(st["refresh_token_usable"].(bool)))
		check("refreshes{refresh_token}", value("wetix_refreshes_total", "grant", "refresh_token"), float64(st["refresh_grants"].(uint64)))
		check("refreshes{client_credentials}", value("wetix_refreshes_total", "grant", "client_credentials"), float64(st["client_credentials_grants"].(uint64)))
		check("wetix_refresh_failures_total", value("wetix_refresh_failures_total"), float64(st["failures"].(uint64)))
		check("wetix_stale_serves_total", value("wetix_stale_serves_total"), float64(st["stale_serves"].(uint64)))
		for name, field := range map[string]string{
			"wetix_access_token_remaining_seconds":  "access_token_expires_at",
			"wetix_refresh_token_remaining_seconds": "refresh_token_expires_at",
		} {
			got, ok := m.Value(name, mount()...)
			if at := st[field].(string); at != "" {
				if !ok {
					t.Fatalf("%s: no %s while status has %s=%s", where, name, field, at)
				}
				exp, _ := time.Parse(time.RFC3339, at)
				check(name, got, float64(exp.Sub(now)/time.Second))
			} else if ok {
				t.Fatalf("%s: %s=%v while status has no %s", where, name, got, field)
			}
		}
		for name, field := range map[string]string{
			"wetix_last_refresh_timestamp_seconds":         "last_refresh_at",
			"wetix_last_refresh_failure_timestamp_seconds": "last_error_at",
		} {
			got, ok := m.Value(name, mount()...)
			if at := st[field].(string); at != "" {
				exp, _ := time.Parse(time.RFC3339, at)
				if !ok {
					t.Fatalf("%s: no %s while status has %s=%s", where, name, field, at)
				}
				check(name, got, float64(exp.Unix()))
			} else if ok {
				t.Fatalf("%s: %s=%v while status has no %s", where, name, got, field)
			}
		}

		var set float64
		for _, k := range failureKinds {
			v := value("wetix_refresh_failing", "kind", k.label)
			if v == 1 {
				seen["failing "+k.label]++
			}
			set += v
		}
		if st["healthy"] == false {
			seen["unhealthy"]++
		}
		if st["stale_serves"].(uint64) > 0 {
			seen["stale serves counted"]++
		}
		lastFailed := st["last_error_at"] != "" && (st["last_refresh_at"] == "" || st["last_error_at"].(string) >= st["last_refresh_at"].(string)) && st["healthy"] == false
		if set > 1 || (set == 1) != lastFailed {
			t.Fatalf("%s: %v failure kinds set; last refresh failed: %v\n%s", where, set, lastFailed, m.Series("wetix_refresh_failing"))
		}

		for name, fam := range m {
			if fam.GetType().String() != "COUNTER" {
				continue
			}
			for _, s := range fam.GetMetric() {
				key := name + s.String()
				if v := s.GetCounter().GetValue(); v < counters[key] {
					t.Fatalf("%s: counter %s went down from %v to %v", where, key, counters[key], v)
				} else {
					counters[key] = v
				}
			}
		}
		h.wantNoSecretIn(body)
	}
	t.Logf("steps that reached each state: %v", seen)
}

// TestMetricsMountLabelIsEscaped: the mount is the operator's choice; a
// quote, a backslash or a newline in it must not break the format.
func TestMetricsMountLabelIsEscaped(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	odd := "team \"a\"\\wetix\n/"
	m, _ := h.scrapeMount(odd)
	if v := m.MustValue(t, "wetix_configured", "mount", odd); v != 1 {
		t.Fatalf("wetix_configured{mount=%q} = %v", odd, v)
	}
}

// TestMetricsPathHelpListsEveryMetric: `vault path-help <mount>/metrics`
// documents each family a scrape shows, with its type.
func TestMetricsPathHelpListsEveryMetric(t *testing.T) {
	h := newHarness(t)
	h.configure(nil)
	h.readToken()
	h.wetix.Fault(wetixtest.FaultInvalidClient())
	h.request(logical.UpdateOperation, "rotate", nil)
	m, _ := h.scrape()
	resp, err := h.request(logical.HelpOperation, "metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	help, _ := resp.Data["help"].(string)
	if len(m) != len(metricDefs) {
		t.Errorf("the scrape has %d families, the path help documents %d", len(m), len(metricDefs))
	}
	for name, fam := range m {
		want := name + " (" + strings.ToLower(fam.GetType().String())
		if !strings.Contains(help, want) {
			t.Errorf("path help lacks %q:\n%s", want, help)
		}
	}
}

// TestPluginBinaryHasNoPrometheusCode: the parser is for tests; the plugin
// writes the format itself, and Vault loads the binary for every mount.
func TestPluginBinaryHasNoPrometheusCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "./cmd/vault-plugin-secrets-wetix").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.Contains(pkg, "prometheus") {
			t.Errorf("the plugin binary links %s", pkg)
		}
	}
}

// TestMetricsOnAPerformanceStandby: a standby answers a scrape from storage
// with what the active node says, even for a due token, without writing
// storage or calling WeTix. Only the read counts are the node's own.
func TestMetricsOnAPerformanceStandby(t *testing.T) {
	active := newHarness(t)
	active.configure(nil)
	active.makeDue()
	_, activeBody := active.scrape()

	standby := active.onPerformanceStandby()
	puts := active.storage.puts.Load()
	m, body := standby.scrape()
	for p := readPath(0); p < readPaths; p++ {
		if v := m.MustValue(t, "wetix_token_reads", mount("path", readPathNames[p])...); v != 0 {
			t.Errorf("the standby, which answered no read, counts %v on %s", v, readPathNames[p])
		}
	}
	activeBody, body = withoutSamples(activeBody, "wetix_token_reads"), withoutSamples(body, "wetix_token_reads")
	if string(body) != string(activeBody) {
		t.Fatalf("the standby's scrape differs from the active node's:\nstandby:\n%s\nactive:\n%s", body, activeBody)
	}
	if v := m.MustValue(t, "wetix_refresh_due", mount()...); v != 1 {
		t.Fatalf("wetix_refresh_due = %v on the standby, want 1", v)
	}
	if n := active.storage.puts.Load() - puts; n != 0 {
		t.Fatalf("a scrape on the standby wrote storage %d times", n)
	}
	active.wantCalls(0, 0)
}

// withoutSamples drops the sample lines of one family, keeping its HELP
// and TYPE.
func withoutSamples(body []byte, family string) []byte {
	var out []string
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, family+"{") {
			out = append(out, line)
		}
	}
	return []byte(strings.Join(out, "\n"))
}

// wantServedRemainingMatchesStatus: the gauge an operator alerts on counts
// down to status's served_until, the instant reads stop being served through
// a failure, and stays short of the expiry by at least the ttl.
func wantServedRemainingMatchesStatus(t *testing.T, h *harness, m metricstest.Families, ttl time.Duration) {
	t.Helper()
	served := m.MustValue(t, "wetix_access_token_served_remaining_seconds", mount()...)
	expires := m.MustValue(t, "wetix_access_token_remaining_seconds", mount()...)
	until, err := time.Parse(time.RFC3339, h.status()["served_until"].(string))
	if err != nil {
		t.Fatalf("status served_until: %v", err)
	}
	if want := float64(until.Sub(h.clock.Now()) / time.Second); served != want {
		t.Errorf("wetix_access_token_served_remaining_seconds = %v, want %v (status served_until %s)", served, want, until.Format(time.RFC3339))
	}
	if served > expires-ttl.Seconds() {
		t.Errorf("served remaining %v s is not at least one ttl (%v) short of the expiry's %v s", served, ttl, expires)
	}
}
