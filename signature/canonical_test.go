package signature

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature/signaturetest"
)

// The page's own minified example, byte for byte.
const docsMinified = `{"bundles":null,"concessions":null,"customer":{"countryCode":"60","email":"harithmohamd67@gmail.com","externalId":null,"phoneNo":"167385346"},"promoCode":null,"referenceId":"123","sessionKey":"EhFNb3ZpZU9yZGVyU2Vzc2lvbiIbMXpodkxWbUdBMExZbGFuUWUxMUNpbWN6Mklk","tickets":[{"key":"U_-HAwEBCUdvYlRpY2tldAH_iAABBQECSUQBDAABBE5hbWUBDAABCEFyZWFDb2RlAQwAAQZBbW91bnQBBgABD1NlYXRzQWxsb2NhdGlvbgEGAAAAGv-IAQVBZHVsdAEFQURVTFQBATEB_g-gAQEA","quantity":1}]}`

// The page's step-2 example.
const docsStep2 = "ewogICJjb25jZXNzaW9ucyI6IG51bGwsCiAgImN1c3RvbWVyIjogewogICAgImVtYWlsIjogImhhcml0aG1vaGFtZDY3QGdtYWlsLmNvbSIsCiAgICAiZXh0ZXJuYWxJZCI6ICJhYmMxMjMiLAogICAgInBob25lTm8iOiAiMDE2NzM4NTM0NiIKICB9LAogICJwcm9tb0NvZGUiOiBudWxsLAogICJyZWRpcmVjdFVybCI6ICJodHRwczovL2dvb2dsZS5jb20iLAogICJyZWZlcmVuY2VJZCI6ICIxMjMiLAogICJzZXNzaW9uS2V5IjogIkVoRk5iM1pwWlU5eVpHVnlVMlZ6YzJsdmJpSWJNWHBvZGt4V2JVZEJNRXhaYkdGdVVXVXhNVU5wYldONk1rbGsiLAogICJ0aWNrZXRzIjogWwogICAgewogICAgICAia2V5IjogIlVfLUhBd0VCQ1VkdllsUnBZMnRsZEFIX2lBQUJCUUVDU1VRQkRBQUJCRTVoYldVQkRBQUJDRUZ5WldGRGIyUmxBUXdBQVFaQmJXOTFiblFCQmdBQkQxTmxZWFJ6UVd4c2IyTmhkR2x2YmdFR0FBQUFHdi1JQVFWQlpIVnNkQUVGUVVSVlRGUUJBVEVCX2ctZ0FRRUEiLAogICAgICAicXVhbnRpdHkiOiAxCiAgICB9CiAgXQp9"

// TestDocsMinifiedExample: the sorted, minified example on the page is a
// fixed point, and is what the page's unsorted example canonicalizes to.
func TestDocsMinifiedExample(t *testing.T) {
	got, err := Canonicalize([]byte(docsMinified))
	if err != nil || string(got) != docsMinified {
		t.Fatalf("canonical form of the page's minified example changed it:\n%s (%v)", got, err)
	}
	vs := signaturetest.Vectors(t)
	if vs[0].Name != "docs-example-unsorted" || vs[0].Canonical != docsMinified {
		t.Fatalf("the page's unsorted example does not canonicalize to its minified example")
	}
}

// TestDocsStep2ExampleIsNotMinified pins the decision that the step-2
// example is stale: it encodes pretty-printed JSON (of another input), which
// the engine would never sign as is.
func TestDocsStep2ExampleIsNotMinified(t *testing.T) {
	raw, err := base64.StdEncoding.DecodeString(docsStep2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte("{\n  \"concessions\": null,")) {
		t.Fatalf("step-2 example decodes to %q", raw[:40])
	}
	c, err := Canonicalize(raw)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(c, raw) || bytes.ContainsAny(c, "\n ") {
		t.Fatalf("canonical form kept the example's whitespace: %s", c)
	}
}

func TestPlaintextLayout(t *testing.T) {
	pt := Plaintext("1612417576451877743", []byte(`{"a":1}`), CreateMovieOrder, 1634616725)
	want := "clientId=1612417576451877743&data=eyJhIjoxfQ==&mutation=createMovieOrder&shaType=SHA256&timestamp=1634616725"
	if string(pt) != want {
		t.Fatalf("plaintext\n got %s\nwant %s", pt, want)
	}
	if strings.Contains(string(pt), "&amp;") || strings.Contains(string(pt), "createMovieOrdershaType") {
		t.Fatal("plaintext copied the page's typos")
	}
}

func TestCanonicalizeRefuses(t *testing.T) {
	deep := strings.Repeat(`{"a":`, MaxDepth+1) + "1" + strings.Repeat("}", MaxDepth+1)
	deepArr := `{"a":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + "}"
	for _, c := range []struct{ name, in, want string }{
		{"empty", ``, "empty"},
		{"spaces", "  \n", "empty"},
		{"array", `[{"a":1}]`, "must be a JSON object"},
		{"string", `"{\"a\":1}"`, "must be a JSON object"},
		{"null", `null`, "must be a JSON object"},
		{"number", `12`, "must be a JSON object"},
		{"trailing", `{"a":1} {"b":2}`, "more after its closing brace"},
		{"trailing-garbage", `{"a":1}x`, "more after"},
		{"duplicate", `{"a":1,"b":2,"a":3}`, `key "a" twice`},
		{"duplicate-nested", `{"x":[{"k":1,"k":1}]}`, `key "k" twice`},
		{"invalid-utf8", "{\"a\":\"\xff\"}", "not valid UTF-8"},
		{"lone-high", `{"a":"\ud800"}`, "lone UTF-16 surrogate"},
		{"lone-high-then-char", `{"a":"\ud800x"}`, "lone UTF-16 surrogate"},
		{"lone-low", `{"a":"x\udc00"}`, "lone UTF-16 surrogate"},
		{"lone-in-key", `{"\uDBFF":1}`, "lone UTF-16 surrogate"},
		{"unterminated", `{"a":1`, "not valid JSON"},
		{"bad-number", `{"a":01}`, "not valid JSON"},
		{"nan", `{"a":NaN}`, "not valid JSON"},
		{"single-quotes", `{'a':1}`, "not valid JSON"},
		{"trailing-comma", `{"a":1,}`, "not valid JSON"},
		{"deep", deep, "nested deeper"},
		{"deep-array", deepArr, "nested deeper"},
	} {
		_, err := Canonicalize([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one containing %q", c.name, err, c.want)
		}
	}
}

func TestCanonicalizeAccepts(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"a":"\\ud800"}`, `{"a":"\\ud800"}`},                                          // an escaped backslash, not an escape
		{`{"a":"\uD83D\uDE00"}`, `{"a":"😀"}`},                                           // a valid pair becomes the character
		{`{"b":[],"a":[[]]}`, `{"a":[[]],"b":[]}`},                                      //
		{`{"a":"\u0041\u00e9\u0000"}`, `{"a":"Aé\u0000"}`},                              // escapes of printable characters are resolved
		{`{"a":-1.0e+10,"b":0E0}`, `{"a":-10000000000,"b":0}`},                          // numbers as float64 prints them
		{` {"a" : true , "b":false}`, `{"a":true,"b":false}`},                           //
		{`{"u":"a&b<c>d","v":"\u003c"}`, `{"u":"a\u0026b\u003cc\u003ed","v":"\u003c"}`}, // HTML-safe, as encoding/json
	} {
		got, err := Canonicalize([]byte(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("Canonicalize(%s) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
	nested := strings.Repeat(`{"a":`, MaxDepth-1) + "1" + strings.Repeat("}", MaxDepth-1)
	if _, err := Canonicalize([]byte(nested)); err != nil {
		t.Errorf("%d levels refused: %v", MaxDepth-1, err)
	}
}

// TestGoRuleIsEncodingJSON: under the default rule, every golden input
// canonicalizes to what encoding/json writes for its parsed value, which is
// the recipe WeTix's team uses (json.Unmarshal into interface{}, then
// json.Marshal): the rule is that recipe, not a look-alike.
func TestGoRuleIsEncodingJSON(t *testing.T) {
	for _, v := range signaturetest.Vectors(t) {
		if v.Rule != "" {
			continue
		}
		var parsed any
		if err := json.Unmarshal([]byte(v.Input), &parsed); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(parsed)
		got, err := Canonicalize([]byte(v.Input))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: Canonicalize = %s, %v; encoding/json writes %s", v.Name, got, err, want)
		}
	}
}

// TestCanonicalizeValueMatchesText: an input Vault decoded (numbers as
// float64, as its plugin protocol delivers them) signs the same bytes as
// the same input sent as a string, numbers included, under the default rule.
func TestCanonicalizeValueMatchesText(t *testing.T) {
	matched := 0
	for _, v := range signaturetest.Vectors(t) {
		if v.Rule != "" {
			continue
		}
		var m any
		if err := json.Unmarshal([]byte(v.Input), &m); err != nil {
			t.Fatal(err)
		}
		got, err := CanonicalizeValue(m)
		if err != nil || string(got) != v.Canonical {
			t.Errorf("%s: CanonicalizeValue = %s, %v; want %s", v.Name, got, err, v.Canonical)
		}
		if hasNumber(v.Input) {
			matched++
		}
	}
	if matched < 3 {
		t.Fatalf("only %d vectors with numbers; the test proves little", matched)
	}
}

func hasNumber(input string) bool {
	dec := json.NewDecoder(strings.NewReader(input))
	dec.UseNumber()
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		if _, ok := tok.(json.Number); ok {
			return true
		}
	}
}

// TestLargeIntegerWarnings: an integer that float64 cannot hold is signed
// as WeTix's server will read it, with a warning naming its path; one that
// survives gets none.
func TestLargeIntegerWarnings(t *testing.T) {
	c, warnings, err := CanonicalizeWithWarnings([]byte(`{"o":{"items":[{"id":12345678901234567890}]},"ok":9007199254740992,"f":1.5e300}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(c) != `{"f":1.5e+300,"o":{"items":[{"id":12345678901234567000}]},"ok":9007199254740992}` {
		t.Fatalf("canonical %s", c)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "input.o.items[0].id") || !strings.Contains(warnings[0], "12345678901234567000") || !strings.Contains(warnings[0], "string") {
		t.Fatalf("warnings %q; want one naming input.o.items[0].id, what is signed, and the fix", warnings)
	}
	_, warnings, err = CanonicalizeValueWithWarnings(map[string]any{"x": []any{map[string]any{"id": float64(1 << 60)}}, "y": float64(1 << 52)})
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "input.x[0].id") {
		t.Fatalf("object form: warnings %q, %v; want one naming input.x[0].id", warnings, err)
	}
	if _, _, err := CanonicalizeWithWarnings([]byte(`{"a":[1e400]}`)); err == nil || !strings.Contains(err.Error(), "input.a[0]") {
		t.Fatalf("1e400: err = %v; want a refusal naming input.a[0] (Go's decoder refuses it too)", err)
	}
}

// TestCanonicalizeValueNumbers: under the literal rule every number in an
// already-decoded input is refused, whatever its Go type, integral floats
// included (12.0 and 1e0 arrive from Vault as 12 and 1, and signing "12"
// would not match the app's text), with the number's path; under the
// default rule the same numbers are signed as float64 prints them.
func TestCanonicalizeValueNumbers(t *testing.T) {
	for _, n := range []any{float64(12), float64(1), float64(0), 1.5, float64(-9007199254740991), 1e300, json.Number("1"), json.Number("1.50"), 1, int64(1), uint64(1), float32(1)} {
		_, _, err := RuleLiteral.CanonicalizeValue(map[string]any{"x": []any{map[string]any{"price": n}}})
		if !errors.Is(err, ErrInexactNumber) || !strings.Contains(err.Error(), "input.x[0].price") {
			t.Errorf("literal, %T %v: err = %v; want ErrInexactNumber naming input.x[0].price", n, n, err)
		}
	}
	for n, want := range map[any]string{float64(12): "12", 1.5: "1.5", 1e300: "1e+300", json.Number("1.50"): "1.5", json.Number("1e2"): "100"} {
		got, _, err := RuleGo.CanonicalizeValue(map[string]any{"p": n})
		if err != nil || string(got) != `{"p":`+want+`}` {
			t.Errorf("go, %T %v: %s, %v; want {\"p\":%s}", n, n, got, err, want)
		}
	}
	for _, rule := range Rules {
		got, _, err := rule.CanonicalizeValue(map[string]any{"b": []any{"1", true, nil}, "a": map[string]any{}})
		if err != nil || string(got) != `{"a":{},"b":["1",true,null]}` {
			t.Fatalf("%s: an object without numbers: %s, %v", rule, got, err)
		}
		for _, bad := range []any{[]any{}, "x", nil, json.Number("1")} {
			if _, _, err := rule.CanonicalizeValue(bad); !errors.Is(err, ErrNotObject) {
				t.Errorf("%s: %#v: err = %v", rule, bad, err)
			}
		}
		if _, _, err := rule.CanonicalizeValue(map[string]any{"a": struct{}{}}); err == nil {
			t.Errorf("%s: a struct was accepted", rule)
		}
	}
	for _, bad := range []float64{math.NaN(), math.Inf(1)} {
		if _, err := CanonicalizeValue(map[string]any{"a": bad}); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestParseRule: the config field's values, and an error naming both.
func TestParseRule(t *testing.T) {
	for in, want := range map[string]Rule{"": RuleGo, "go": RuleGo, "literal": RuleLiteral} {
		if got, err := ParseRule(in); err != nil || got != want {
			t.Errorf("ParseRule(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseRule("js"); err == nil || !strings.Contains(err.Error(), "canonical_json") || !strings.Contains(err.Error(), `"literal"`) {
		t.Errorf("ParseRule(js): %v", err)
	}
}

// TestCanonicalizeDepthSameForBothForms: a string and an already-decoded
// object holding the same input meet the same depth limit, for objects and
// arrays, at the limit and one past it.
func TestCanonicalizeDepthSameForBothForms(t *testing.T) {
	for _, levels := range []int{MaxDepth, MaxDepth + 1} {
		objects := strings.Repeat(`{"a":`, levels) + `"x"` + strings.Repeat("}", levels)
		arrays := `{"a":` + strings.Repeat("[", levels-1) + `"x"` + strings.Repeat("]", levels-1) + "}"
		for name, text := range map[string]string{"objects": objects, "arrays": arrays} {
			_, errText := Canonicalize([]byte(text))
			var v any
			if err := json.Unmarshal([]byte(text), &v); err != nil {
				t.Fatal(err)
			}
			_, errValue := CanonicalizeValue(v)
			if (errText == nil) != (errValue == nil) {
				t.Errorf("%s, %d levels: as a string err=%v, as an object err=%v", name, levels, errText, errValue)
			}
			if wantErr := levels > MaxDepth; (errText != nil) != wantErr {
				t.Errorf("%s, %d levels: err=%v; want refused=%v", name, levels, errText, wantErr)
			}
		}
	}
}

func TestCheckMutation(t *testing.T) {
	for _, ok := range []string{"createMovieOrder", "confirmMovieOrder"} {
		if err := CheckMutation(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "CreateMovieOrder", "createMovieOrder ", "cancelMovieOrder"} {
		err := CheckMutation(bad)
		if err == nil || !strings.Contains(err.Error(), "createMovieOrder") {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}
