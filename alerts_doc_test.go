package wetix

import (
	"os"
	"regexp"
	"testing"
)

// The alert rules operators copy live twice: in docs/operators.md, to read,
// and in docs/prometheus/wetix-alerts.yml, to load and to test with promtool
// (make alerts-check). They must be the same rules, on metrics that exist.
func TestOperatorsAlertRulesAreTheCheckedRulesFile(t *testing.T) {
	file, err := os.ReadFile("docs/prometheus/wetix-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("docs/operators.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```yaml\n(groups:\n.*?)```").FindSubmatch(doc)
	if block == nil {
		t.Fatal("docs/operators.md has no ```yaml block starting with groups:")
	}
	if string(block[1]) != string(file) {
		t.Errorf("the alert rules in docs/operators.md differ from docs/prometheus/wetix-alerts.yml; change both (and run make alerts-check)")
	}

	h := newHarness(t)
	h.configure(map[string]interface{}{"ttl": "1m"})
	h.readToken()
	m, _ := h.scrape()
	names := regexp.MustCompile(`wetix_[a-z_]+`).FindAllString(string(file), -1)
	if len(names) < 3 {
		t.Fatalf("found %d metric names in the rules, want one per alert at least", len(names))
	}
	for _, name := range names {
		if f, ok := m[name]; !ok || len(f.GetMetric()) == 0 {
			t.Errorf("alert rule uses %s, which a configured mount serving a token does not report", name)
		}
	}
}
