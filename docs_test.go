package wetix

// The docs cannot drift from the code: every relative link and anchor in the
// README and docs/ resolves, the field tables marked for a path list exactly
// that path's fields, the README's path map lists exactly the backend's
// paths, and path-help describes every field. The documented commands are
// run against a real Vault by acceptance/docs_commands_test.go.

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

// markdownFiles are the docs a reader sees: the README and docs/.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"README.md"}, files...)
}

var (
	fenceLine    = regexp.MustCompile("^\\s*(```|~~~)")
	inlineCode   = regexp.MustCompile("`[^`]*`")
	markdownLink = regexp.MustCompile(`\[[^\]]*\]\(([^)\s]+)\)`)
	headingLine  = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)
)

// proseLines are a file's lines outside fenced code blocks, with their
// numbers.
func proseLines(t *testing.T, file string) map[int]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]string{}
	inFence := false
	for i, l := range strings.Split(string(b), "\n") {
		if fenceLine.MatchString(l) {
			inFence = !inFence
			continue
		}
		if !inFence {
			out[i+1] = l
		}
	}
	return out
}

// anchorsOf are the anchors GitHub gives a file's headings.
func anchorsOf(t *testing.T, file string) map[string]bool {
	t.Helper()
	lines := proseLines(t, file)
	nums := make([]int, 0, len(lines))
	for n := range lines {
		nums = append(nums, n)
	}
	sort.Ints(nums)
	seen := map[string]int{}
	anchors := map[string]bool{}
	for _, n := range nums {
		m := headingLine.FindStringSubmatch(lines[n])
		if m == nil {
			continue
		}
		slug := githubSlug(m[2])
		if k := seen[slug]; k > 0 {
			anchors[slug+"-"+strconv.Itoa(k)] = true
		} else {
			anchors[slug] = true
		}
		seen[slug]++
	}
	return anchors
}

// githubSlug is GitHub's heading anchor: the text without markup, lower
// case, every character but letters, digits, '-', '_' and spaces dropped,
// spaces turned into '-'.
func githubSlug(heading string) string {
	heading = markdownLink.ReplaceAllStringFunc(heading, func(l string) string {
		return l[1:strings.Index(l, "](")]
	})
	var sb strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			sb.WriteRune(r)
		case r == ' ':
			sb.WriteRune('-')
		}
	}
	return sb.String()
}

func TestDocsLinksAndAnchorsResolve(t *testing.T) {
	anchors := map[string]map[string]bool{}
	anchorsFor := func(file string) map[string]bool {
		if anchors[file] == nil {
			anchors[file] = anchorsOf(t, file)
		}
		return anchors[file]
	}
	checked := 0
	for _, file := range markdownFiles(t) {
		for n, line := range proseLines(t, file) {
			for _, m := range markdownLink.FindAllStringSubmatch(inlineCode.ReplaceAllString(line, ""), -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				checked++
				path, anchor, _ := strings.Cut(target, "#")
				dest := file
				if path != "" {
					dest = filepath.Join(filepath.Dir(file), path)
					if _, err := os.Stat(dest); err != nil {
						t.Errorf("%s:%d: link %q: %s does not exist", file, n, target, dest)
						continue
					}
				}
				if anchor != "" {
					if !strings.HasSuffix(dest, ".md") {
						t.Errorf("%s:%d: link %q: an anchor into a file that is not Markdown", file, n, target)
					} else if !anchorsFor(dest)[anchor] {
						t.Errorf("%s:%d: link %q: %s has no heading with anchor #%s", file, n, target, dest, anchor)
					}
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d relative links found: is the parser broken?", checked)
	}
	t.Logf("%d relative links and anchors resolve", checked)
}

// fieldTable is a Markdown table marked <!-- fields: PATH --> (the path's
// request fields) or <!-- response-fields: PATH --> (its read answer).
type fieldTable struct {
	where, path string
	response    bool
	names       []string
}

var fieldTableMarker = regexp.MustCompile(`^<!--\s*(fields|response-fields):\s*(\S+)\s*-->$`)

func fieldTables(t *testing.T) []fieldTable {
	t.Helper()
	var tables []fieldTable
	for _, file := range markdownFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			m := fieldTableMarker.FindStringSubmatch(strings.TrimSpace(l))
			if m == nil {
				continue
			}
			ft := fieldTable{where: file + ":" + strconv.Itoa(i+1), path: m[2], response: m[1] == "response-fields"}
			for _, row := range lines[i+1:] {
				if !strings.HasPrefix(strings.TrimSpace(row), "|") {
					break
				}
				cells := strings.Split(strings.Trim(strings.TrimSpace(row), "|"), "|")
				for _, code := range inlineCode.FindAllString(cells[0], -1) {
					ft.names = append(ft.names, strings.Trim(code, "`"))
				}
			}
			if len(ft.names) == 0 {
				t.Errorf("%s: a field table marker with no table after it", ft.where)
			}
			tables = append(tables, ft)
		}
	}
	return tables
}

func pathByPattern(b *backend, pattern string) *framework.Path {
	for _, p := range b.Backend.Paths {
		if p.Pattern == pattern {
			return p
		}
	}
	return nil
}

func responseFields(p *framework.Path) map[string]bool {
	out := map[string]bool{}
	for _, op := range []logical.Operation{logical.ReadOperation} {
		h, ok := p.Operations[op].(*framework.PathOperation)
		if !ok {
			continue
		}
		for _, rs := range h.Responses {
			for _, r := range rs {
				for name := range r.Fields {
					out[name] = true
				}
			}
		}
	}
	return out
}

func TestDocsFieldTablesMatchTheFramework(t *testing.T) {
	h := newHarness(t)
	tables := fieldTables(t)
	if len(tables) < 2 {
		t.Fatalf("found %d marked field tables, want the config and status ones at least", len(tables))
	}
	for _, ft := range tables {
		p := pathByPattern(h.b, ft.path)
		if p == nil {
			t.Errorf("%s: field table for %q, which is no path of the backend", ft.where, ft.path)
			continue
		}
		defined := map[string]bool{}
		if ft.response {
			defined = responseFields(p)
		} else {
			for name := range p.Fields {
				defined[name] = true
			}
		}
		documented := map[string]bool{}
		for _, n := range ft.names {
			documented[n] = true
			if !defined[n] {
				t.Errorf("%s: documents %s field %q, which %s does not have", ft.where, kindOf(ft), n, ft.path)
			}
		}
		for n := range defined {
			if !documented[n] {
				t.Errorf("%s: %s field %q of %s is not documented in the table", ft.where, kindOf(ft), n, ft.path)
			}
		}
	}
}

func kindOf(ft fieldTable) string {
	if ft.response {
		return "response"
	}
	return "request"
}

var readmePathRow = regexp.MustCompile("^\\|\\s*(`[^|]*)\\|")

// TestReadmePathMapListsEveryPath: the README's "Paths" table names every
// path the backend serves, and nothing else.
func TestReadmePathMapListsEveryPath(t *testing.T) {
	h := newHarness(t)
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(b)
	start := strings.Index(section, "\n## Paths\n")
	if start < 0 {
		t.Fatal(`README.md has no "## Paths" section`)
	}
	section = section[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	listed := map[string]bool{}
	for _, l := range strings.Split(section, "\n") {
		if m := readmePathRow.FindStringSubmatch(l); m != nil {
			for _, code := range inlineCode.FindAllString(m[1], -1) {
				listed[strings.Trim(code, "`")] = true
			}
		}
	}
	served := map[string]bool{}
	for _, p := range h.b.Backend.Paths {
		served[p.Pattern] = true
		if !listed[p.Pattern] {
			t.Errorf("README's path map does not list %q", p.Pattern)
		}
	}
	for name := range listed {
		if !served[name] {
			t.Errorf("README's path map lists %q, which the backend does not serve", name)
		}
	}
}

var helpAssignment = regexp.MustCompile(`\b([a-z][a-z0-9_]*)=`)

// TestPathHelpDescribesExactlyTheFields: `vault path-help` is generated from
// the framework's definitions, so it lists exactly the fields; what can
// drift is the prose. Every path has a synopsis and a description, every
// field (request and response) a description, and every name=value the
// prose suggests names a field that exists.
func TestPathHelpDescribesExactlyTheFields(t *testing.T) {
	h := newHarness(t)
	all := map[string]bool{}
	for _, p := range h.b.Backend.Paths {
		for name := range p.Fields {
			all[name] = true
		}
	}
	for _, p := range h.b.Backend.Paths {
		if strings.TrimSpace(p.HelpSynopsis) == "" || strings.TrimSpace(p.HelpDescription) == "" {
			t.Errorf("path %s: path-help synopsis %q, description %q: want both", p.Pattern, p.HelpSynopsis, p.HelpDescription)
		}
		for name, f := range p.Fields {
			if strings.TrimSpace(f.Description) == "" {
				t.Errorf("path %s: field %s has no description", p.Pattern, name)
			}
		}
		for op, h := range p.Operations {
			po, ok := h.(*framework.PathOperation)
			if !ok {
				continue
			}
			for _, rs := range po.Responses {
				for _, r := range rs {
					for name, f := range r.Fields {
						if strings.TrimSpace(f.Description) == "" {
							t.Errorf("path %s %s: response field %s has no description", p.Pattern, op, name)
						}
					}
				}
			}
		}
		texts := []string{p.HelpDescription}
		for _, f := range p.Fields {
			texts = append(texts, f.Description)
		}
		for _, text := range texts {
			for _, m := range helpAssignment.FindAllStringSubmatch(text, -1) {
				if !all[m[1]] && !slices.Contains(helpNonFields, m[1]) {
					t.Errorf("path %s: help suggests %s=..., but no path has a field %q", p.Pattern, m[1], m[1])
				}
			}
		}
	}
}

// helpNonFields are name= forms in help prose that are not field writes:
// the plaintext's own keys, CLI flags, metric labels, and sign's input
// (read by the handler itself, not declared).
var helpNonFields = []string{"clientid", "data", "mutation", "shatype", "timestamp", "plugin", "field", "format", "version", "charset", "reason", "input"}
