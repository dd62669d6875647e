package bench

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// scaleTableHead is the head of the table of cells; each cell appends a row
// under its own copy, and scripts/scale.sh keeps one head for all rows.
const scaleTableHead = "| option | via | ttl | lease of a read | target reads/s | achieved reads/s | sent late (>10 ms) | duration | live leases at end | peak leases | Vault RSS start / end / peak (MiB) | KiB per lease | plugin RSS (MiB) | Proxy RSS (MiB) | p50 | p99 | errors | WeTix calls | access tokens seen | lease IDs seen |\n" +
	"|---|---|---|---|---:|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"

func (c *scaleCell) report(final scaleSample, e scaleEnd) {
	set := c.set
	start := c.samples[0]
	renew := "non-renewable"
	if c.first.Renewable {
		renew = "renewable"
	}
	achieved := float64(e.OK) / e.Elapsed.Seconds()
	late := 0.0
	if e.Sent > 0 {
		late = 100 * float64(e.Late) / float64(e.Sent)
	}
	perLease := "–"
	if grown := e.EndLeases - int64(e.StartLeases); grown > 0 {
		perLease = fmt.Sprintf("%.2f", float64(final.VaultRSS-start.VaultRSS)/float64(grown))
	}
	proxyRSS := "–"
	if c.proxy != nil {
		proxyRSS = fmt.Sprintf("%.0f", kibToMiB(final.ProxyRSS))
	}
	duration := shortDur(set.duration)
	if e.Interrupted {
		duration = fmt.Sprintf("**%s of %s (interrupted)**", shortDur(e.Elapsed.Round(time.Second)), duration)
	}
	row := fmt.Sprintf("| %s | %s | %s | %s, %ds | %.0f | %.0f | %.1f%% | %s | %d | %d | %.0f / %.0f / %.0f | %s | %.0f | %s | %s | %s | %d | %d | %d | %d |",
		cellText(set.label), set.via, shortDur(set.ttl), renew, c.first.LeaseDuration, set.rate, achieved, late, duration,
		e.EndLeases, e.PeakLeases, kibToMiB(start.VaultRSS), kibToMiB(final.VaultRSS), kibToMiB(e.VaultHWM), perLease,
		kibToMiB(final.PluginRSS), proxyRSS, ms(e.P50), ms(e.P99), e.Errors, e.WeTixCalls, e.Tokens, e.LeaseIDs)

	var notes []string
	notes = append(notes, fmt.Sprintf("%s; %d readers, open loop at %.0f reads/s for %s (run %s); plugin %s (%s, sha256 %.12s)",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), set.readers, set.rate, shortDur(set.duration), e.Elapsed.Round(time.Millisecond),
		c.plugin.Version, c.plugin.File, c.plugin.SHA256))
	notes = append(notes, fmt.Sprintf("machine: %s", machine()))
	notes = append(notes, fmt.Sprintf("reads answered %d, errors %d, sent %d of which %d more than %s behind their slot", e.OK, e.Errors, e.Sent, e.Late, lateSlack))
	if e.FirstError != "" {
		notes = append(notes, "first error: "+e.FirstError)
	}
	listed := "not listed (WETIX_SCALE_LIST=0)"
	if e.Listed >= 0 {
		listed = fmt.Sprintf("%d (LIST sys/leases/lookup/%s/token/ right after the load, took %s; %d before it)", e.Listed, scaleMount, e.ListTook.Round(time.Millisecond), e.StartLeases)
	}
	notes = append(notes, fmt.Sprintf("live leases at end: %s; gauge of the first interval after the load (as of %s, %s after it stopped): %d; distinct lease IDs readers were handed: %d (+%d read before the load)",
		listed, e.Settled.AsOf.UTC().Format(time.TimeOnly), e.Settled.AsOf.Sub(e.StopAt).Round(time.Second), e.Settled.Leases, e.LeaseIDs, e.StartLeases))
	notes = append(notes, "KiB per lease = (Vault RSS at the end of the load − before it) ÷ (leases at end − before); RSS includes Go heap not yet collected. Vault peak is VmHWM.")

	fmt.Printf("scale: %s\n", strings.Join(notes, "\nscale: "))
	fmt.Printf("%s\n%s\n", scaleTableHead, row)
	if set.out == "" {
		return
	}
	var w strings.Builder
	fmt.Fprintf(&w, "%s\n%s\n\n", scaleTableHead, row)
	fmt.Fprintf(&w, "#### %s, %s, ttl %s\n\n", cellText(set.label), set.via, shortDur(set.ttl))
	for _, n := range notes {
		fmt.Fprintf(&w, "- %s\n", n)
	}
	fmt.Fprintf(&w, "\n| t | live leases (gauge) | gauge age | Vault RSS (MiB) | plugin RSS (MiB) | Proxy RSS (MiB) | reads/s | p50 | p99 | errors | most behind schedule | cores: Vault / plugin / Proxy / load generator |\n")
	fmt.Fprintf(&w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, s := range c.samples {
		rate, cores := "–", "–"
		if s.Span > 0 {
			rate = fmt.Sprintf("%.0f", float64(s.W.OK)/s.Span.Seconds())
			cores = fmt.Sprintf("%.2f / %.2f / %.2f / %.2f", s.VaultCPU, s.PluginCPU, s.ProxyCPU, s.BenchCPU)
		}
		proxy := "–"
		if c.proxy != nil {
			proxy = fmt.Sprintf("%.0f", kibToMiB(s.ProxyRSS))
		}
		fmt.Fprintf(&w, "| %.0fs | %d | %.0fs | %.0f | %.0f | %s | %s | %s | %s | %d | %s | %s |\n",
			s.T.Seconds(), s.Gauge.Leases, s.At.Sub(s.Gauge.AsOf).Seconds(), kibToMiB(s.VaultRSS), kibToMiB(s.PluginRSS), proxy,
			rate, windowMS(s.W, s.W.P50), windowMS(s.W, s.W.P99), s.W.Errors, windowMS(s.W, s.W.MaxLag), cores)
	}
	f, err := os.OpenFile(set.out, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.b.Fatal(err)
	}
	if _, err := f.WriteString(w.String() + "\n"); err != nil {
		c.b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		c.b.Fatal(err)
	}
}

// cellText keeps a label from breaking the table.
func cellText(s string) string { return strings.ReplaceAll(s, "|", "/") }

// shortDur writes 1h, 5m or 1m30s rather than 1h0m0s.
func shortDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// windowMS is a latency of the window, or a dash for a window with no
// answers (the sample before the load).
func windowMS(w window, d time.Duration) string {
	if w.OK+w.Errors == 0 {
		return "–"
	}
	return ms(d)
}
