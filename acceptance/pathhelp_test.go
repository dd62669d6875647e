package acceptance

import (
	"net/http"
	"strings"
	"testing"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// configFields are what an operator can write to config, as the README lists.
var configFields = []string{"client_id", "client_secret", "environment", "base_url", "refresh_token", "ttl", "request_timeout"}

// TestPathHelp: `vault path-help` documents every path, with a description
// for every config field, and the OpenAPI document Vault generates (which
// the UI and client generators read) lists the paths and describes
// every request and response field.
func TestPathHelp(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	s, _ := setup(t, wetixtest.Options{}, nil)

	for _, path := range []string{"config", "token", "static-token", "status", "rotate"} {
		help := parsePathHelp(s.MustCLI("path-help", "wetix/"+path))
		if help.synopsis == "" || help.description == "" {
			t.Errorf("path-help wetix/%s: synopsis %q, description %q; want both", path, help.synopsis, help.description)
		}
		for name, desc := range help.fields {
			if desc == "" {
				t.Errorf("path-help wetix/%s: field %s has no description", path, name)
			}
		}
		if path == "config" {
			t.Logf("path-help wetix/config documents %d fields", len(help.fields))
			for _, f := range configFields {
				if _, ok := help.fields[f]; !ok {
					t.Errorf("path-help wetix/config does not list %s (lists %v)", f, keys(help.fields))
				}
			}
		}
	}

	code, body := rawGet(t, s.Addr, "sys/internal/specs/openapi", s.Token)
	if code != http.StatusOK {
		t.Fatalf("GET sys/internal/specs/openapi: %d %s", code, body)
	}
	var doc struct {
		Paths      map[string]map[string]interface{} `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Description string `json:"description"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	mustJSON(t, body, &doc)
	want := map[string][]string{
		"/wetix/config":       configFields,
		"/wetix/token":        {"access_token", "token_type", "expires_at"},
		"/wetix/static-token": {"access_token", "token_type", "expires_at", "ttl", "rotation_period", "last_vault_rotation"},
		"/wetix/status":       {"healthy", "advice", "access_token_expires_at", "last_error"},
		"/wetix/rotate":       {"healthy", "last_grant"},
	}
	for path, fields := range want {
		ops, ok := doc.Paths[path]
		if !ok {
			t.Errorf("OpenAPI has no %s", path)
			continue
		}
		// Fields documented for this path: the request and response schemas
		// of its operations. Vault's merged document empties the operations'
		// "$ref"s, so find the schemas by name, as Vault derives it from the
		// operationId ("wetix-read-status" -> "WetixReadStatusResponse").
		described := map[string]string{}
		for _, name := range schemaNames(ops) {
			for name, p := range doc.Components.Schemas[name].Properties {
				described[name] = p.Description
				if p.Description == "" {
					t.Errorf("OpenAPI %s: field %s has no description", path, name)
				}
			}
		}
		for _, f := range fields {
			if _, ok := described[f]; !ok {
				t.Errorf("OpenAPI %s does not document %s (documents %v)", path, f, keys(described))
			}
		}
	}
}

type pathHelp struct {
	synopsis, description string
	fields                map[string]string // name -> description
}

// parsePathHelp reads the text sdk/framework's pathHelpTemplate renders:
// a header, the synopsis, "## PARAMETERS" with "    name (type)" lines each
// followed by an 8-space-indented description, then "## DESCRIPTION".
func parsePathHelp(out string) pathHelp {
	h := pathHelp{fields: map[string]string{}}
	section, field := "head", ""
	for _, line := range strings.Split(out, "\n") {
		switch {
		case line == "## PARAMETERS":
			section = "params"
		case line == "## DESCRIPTION":
			section = "desc"
		case section == "head" && line != "" && !strings.HasPrefix(line, "Request:") && !strings.HasPrefix(line, "Matching Route:"):
			h.synopsis = strings.TrimSpace(h.synopsis + " " + line)
		case section == "params" && strings.HasPrefix(line, "    ") && !strings.HasPrefix(line, "     ") && strings.HasSuffix(line, ")"):
			field = strings.Fields(line)[0]
			h.fields[field] = ""
		case section == "params" && field != "" && strings.TrimSpace(line) != "":
			h.fields[field] = strings.TrimSpace(h.fields[field] + " " + strings.TrimSpace(line))
		case section == "desc":
			h.description = strings.TrimSpace(h.description + " " + line)
		}
	}
	return h
}

// schemaNames lists the request and response schema names of the
// operations of one OpenAPI path item.
func schemaNames(ops map[string]interface{}) []string {
	var names []string
	for _, op := range ops {
		m, ok := op.(map[string]interface{})
		if !ok {
			continue
		}
		id, _ := m["operationId"].(string)
		if id == "" {
			continue
		}
		var camel string
		for _, part := range strings.Split(id, "-") {
			if part != "" {
				camel += strings.ToUpper(part[:1]) + part[1:]
			}
		}
		names = append(names, camel+"Request", camel+"Response")
	}
	return names
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
