// Package metricstest reads the plugin's metrics the way Prometheus does:
// with the text parser of github.com/prometheus/common, not by matching
// strings. Only tests import it, so the parser stays out of the plugin
// binary.
package metricstest

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ContentType is what Prometheus expects of a text-format target.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Families is a parsed scrape, by metric name.
type Families map[string]*dto.MetricFamily

// Parse parses body with the legacy (pre-UTF-8) name rules, which every
// Prometheus server accepts, and fails the test unless every family has a
// HELP line and is a counter or a gauge, every counter's name ends in
// _total, and no series appears twice.
func Parse(tb testing.TB, body []byte) Families {
	tb.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		tb.Fatalf("the Prometheus text parser rejects the metrics: %v\n%s", err, body)
	}
	for name, f := range fams {
		if f.GetHelp() == "" {
			tb.Errorf("%s has no HELP", name)
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			if !strings.HasSuffix(name, "_total") {
				tb.Errorf("counter %s does not end in _total", name)
			}
		case dto.MetricType_GAUGE:
		default:
			tb.Errorf("%s has type %s; want a TYPE line of counter or gauge", name, f.GetType())
		}
		seen := map[string]bool{}
		for _, m := range f.GetMetric() {
			key := labelKey(m.GetLabel())
			if seen[key] {
				tb.Errorf("%s{%s} appears twice", name, key)
			}
			seen[key] = true
		}
	}
	return fams
}

// Value is the sample of name whose labels are exactly labels (name, value,
// name, value...); ok is false when there is none.
func (f Families) Value(name string, labels ...string) (v float64, ok bool) {
	fam, found := f[name]
	if !found {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, m := range fam.GetMetric() {
		if !sameLabels(m.GetLabel(), want) {
			continue
		}
		switch fam.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		default:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// MustValue is Value failing the test when the sample is missing.
func (f Families) MustValue(tb testing.TB, name string, labels ...string) float64 {
	tb.Helper()
	v, ok := f.Value(name, labels...)
	if !ok {
		tb.Fatalf("no sample %s%v in the scrape; it has %s", name, labels, f.Series(name))
	}
	return v
}

// Series lists name's samples as name{labels} value, for failure messages.
func (f Families) Series(name string) string {
	fam, ok := f[name]
	if !ok {
		return "no " + name + " family"
	}
	var out []string
	for _, m := range fam.GetMetric() {
		v, _ := f.Value(name, labelPairs(m.GetLabel())...)
		out = append(out, fmt.Sprintf("%s{%s} %g", name, labelKey(m.GetLabel()), v))
	}
	if len(out) == 0 {
		return "no samples of " + name
	}
	return strings.Join(out, "; ")
}

func sameLabels(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, l := range got {
		if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
			return false
		}
	}
	return true
}

func labelPairs(ls []*dto.LabelPair) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.GetName(), l.GetValue())
	}
	return out
}

func labelKey(ls []*dto.LabelPair) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%s=%q", l.GetName(), l.GetValue())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
