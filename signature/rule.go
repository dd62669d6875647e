package signature

import "fmt"

// Rule names how the input argument is turned into the bytes that are
// signed. WeTix's docs say only "sort, keep nulls, minify"; the two rules
// differ where they are silent (escaping of < > & U+2028 U+2029, and the
// text of numbers), so a mount can pick the one its sandbox accepts.
type Rule string

const (
	// RuleGo is the default: the bytes Go's encoding/json writes for the
	// parsed input, which is what WeTix's Go server most probably rebuilds
	// (see gorule.go for the evidence).
	RuleGo Rule = "go"
	// RuleLiteral is the v0.1 rule, kept as the escape hatch for an
	// integrator whose sandbox check says WeTix verifies over the app's own
	// characters: keys sorted, minified, strings written as JSON.stringify
	// writes them (< > & U+2028 raw), each number's text kept.
	RuleLiteral Rule = "literal"
)

// Rules lists the valid rules, default first.
var Rules = []Rule{RuleGo, RuleLiteral}

// ParseRule accepts a rule's name; "" is the default.
func ParseRule(name string) (Rule, error) {
	switch Rule(name) {
	case "", RuleGo:
		return RuleGo, nil
	case RuleLiteral:
		return RuleLiteral, nil
	}
	return "", fmt.Errorf("canonical_json must be %q (the default: Go's encoding/json, as WeTix's server re-encodes the input) or %q (the v0.1 rule: characters and number text kept as sent), not %q", RuleGo, RuleLiteral, name)
}

// Canonicalize turns the input's JSON text into the bytes to sign, with
// warnings about numbers WeTix will read differently from their text.
func (r Rule) Canonicalize(raw []byte) ([]byte, []string, error) {
	if r == RuleLiteral {
		c, err := canonicalizeLiteral(raw)
		return c, nil, err
	}
	return CanonicalizeWithWarnings(raw)
}

// CanonicalizeValue is Canonicalize for an input Vault already decoded from
// a JSON object in the request body.
func (r Rule) CanonicalizeValue(v any) ([]byte, []string, error) {
	if r == RuleLiteral {
		c, err := canonicalizeValueLiteral(v)
		return c, nil, err
	}
	return CanonicalizeValueWithWarnings(v)
}
