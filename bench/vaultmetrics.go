package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// metricsInterval is the interval of Vault's in-memory metrics sink
// (configutil.SetupTelemetry: metrics.NewInmemSink(10*time.Second, ...)).
// GET sys/metrics shows the last finished interval, and a gauge there holds
// the last value set in it: Vault sets the lease count every second, so the
// figure is that of the interval's last second, up to one interval old.
const metricsInterval = 10 * time.Second

// leaseGauge is vault.expire.num_leases from GET sys/metrics (JSON), with
// the end of the interval it describes.
type leaseGauge struct {
	Leases int64
	AsOf   time.Time
}

// readLeaseGauge asks Vault (not a Proxy) for its lease count gauge.
func readLeaseGauge(hc *http.Client, addr, token string) (leaseGauge, error) {
	req, err := http.NewRequest(http.MethodGet, addr+"/v1/sys/metrics", nil)
	if err != nil {
		return leaseGauge{}, err
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := hc.Do(req)
	if err != nil {
		return leaseGauge{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return leaseGauge{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return leaseGauge{}, fmt.Errorf("sys/metrics: HTTP %d: %.300s", resp.StatusCode, b)
	}
	var m struct {
		Timestamp string
		Gauges    []struct {
			Name  string
			Value float64
		}
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return leaseGauge{}, fmt.Errorf("sys/metrics: %v", err)
	}
	start, err := time.Parse("2006-01-02 15:04:05 -0700 MST", m.Timestamp)
	if err != nil {
		return leaseGauge{}, fmt.Errorf("sys/metrics Timestamp %q: %v", m.Timestamp, err)
	}
	for _, g := range m.Gauges {
		// "vault.expire.num_leases", or with the host name after "vault."
		// when telemetry's disable_hostname is false (the default).
		if strings.HasPrefix(g.Name, "vault.") && strings.HasSuffix(g.Name, ".expire.num_leases") {
			return leaseGauge{Leases: int64(g.Value), AsOf: start.Add(metricsInterval)}, nil
		}
	}
	return leaseGauge{}, fmt.Errorf("%w in the interval starting %s", errNoLeaseGauge, m.Timestamp)
}

// errNoLeaseGauge is the answer of a Vault that has not set the gauge in
// the interval shown yet: one that just started.
var errNoLeaseGauge = errors.New("sys/metrics: no vault.expire.num_leases gauge (Vault sets it every second on the active node)")
