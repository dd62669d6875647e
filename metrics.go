package wetix

import (
	"bytes"
	"math"
	"strconv"
	"strings"
)

// The Prometheus text exposition format (version 0.0.4) is written by hand:
// the plugin exposes a dozen gauges and counters computed from storage at
// scrape time, which needs no registry, and the client library would add
// several modules to a binary that Vault loads into every mount.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

type metricType string

const (
	counter metricType = "counter"
	gauge   metricType = "gauge"
)

// metricFamily is one metric name with its HELP, TYPE and samples.
type metricFamily struct {
	name    string
	help    string
	typ     metricType
	samples []metricSample
}

// metricSample is one line: the family's name, labels in the given order,
// and a value.
type metricSample struct {
	labels []metricLabel
	value  float64
}

type metricLabel struct{ name, value string }

func (f *metricFamily) add(value float64, labels ...metricLabel) {
	f.samples = append(f.samples, metricSample{labels: labels, value: value})
}

// exposition writes families in the order given. A family without samples
// still gets its HELP and TYPE, so a scraper learns the metric exists before
// it has a value (an access token's expiry before the first read).
func exposition(families []*metricFamily) []byte {
	var buf bytes.Buffer
	for _, f := range families {
		buf.WriteString("# HELP ")
		buf.WriteString(f.name)
		buf.WriteByte(' ')
		buf.WriteString(escapeHelp(f.help))
		buf.WriteString("\n# TYPE ")
		buf.WriteString(f.name)
		buf.WriteByte(' ')
		buf.WriteString(string(f.typ))
		buf.WriteByte('\n')
		for _, s := range f.samples {
			buf.WriteString(f.name)
			if len(s.labels) > 0 {
				buf.WriteByte('{')
				for i, l := range s.labels {
					if i > 0 {
						buf.WriteByte(',')
					}
					buf.WriteString(l.name)
					buf.WriteString(`="`)
					buf.WriteString(escapeLabelValue(l.value))
					buf.WriteByte('"')
				}
				buf.WriteByte('}')
			}
			buf.WriteByte(' ')
			buf.WriteString(formatSampleValue(s.value))
			buf.WriteByte('\n')
		}
	}
	return buf.Bytes()
}

// The format's escapes: in HELP, backslash and newline; in a label value,
// also the double quote. A mount path is chosen by the operator and may hold
// any of them.
var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string       { return helpEscaper.Replace(s) }
func escapeLabelValue(s string) string { return labelEscaper.Replace(s) }

// formatSampleValue writes whole numbers without an exponent, so counts and
// unix times read as they are (1.7e+09 would parse, but not at a glance).
func formatSampleValue(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
