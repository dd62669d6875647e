package acceptance

import (
	"strings"
	"testing"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
)

// TestRegisterAsOperator follows the README's install steps: register by
// sha256 and version with a plain PUT, check with `vault plugin info`,
// enable that version, and see it running in `vault secrets list -detailed`.
func TestRegisterAsOperator(t *testing.T) {
	vaulttest.RequireLong(t)
	dir := t.TempDir()
	p := vaulttest.BuildPlugin(t, dir, version)
	s := vaulttest.Start(t, vaulttest.Options{PluginDir: dir})

	_, err := s.Client.Logical().Write("sys/plugins/catalog/secret/"+vaulttest.CatalogName, map[string]interface{}{
		"sha256":  p.SHA256,
		"command": p.File,
		"version": version,
	})
	if err != nil {
		t.Fatalf("PUT sys/plugins/catalog/secret/wetix: %v", err)
	}

	info := s.MustCLI("plugin", "info", "-format=json", "-version="+version, "secret", vaulttest.CatalogName)
	var got struct {
		Version string `json:"version"`
		SHA256  string `json:"sha256"`
		Command string `json:"command"`
	}
	mustJSON(t, []byte(info), &got)
	if got.Version != version || got.SHA256 != p.SHA256 || got.Command != p.File {
		t.Errorf("vault plugin info: version %q sha256 %q command %q; want %q %q %q",
			got.Version, got.SHA256, got.Command, version, p.SHA256, p.File)
	}

	// An operator pinning a version that was never registered must be told
	// so, not get some other build.
	if out, err := s.CLI("secrets", "enable", "-path=wrong", "-plugin-version=v9.9.9", vaulttest.CatalogName); err == nil {
		t.Errorf("enabling unregistered version v9.9.9 succeeded: %s", out)
	}

	s.MustCLI("secrets", "enable", "-path=wetix", "-plugin-version="+version, vaulttest.CatalogName)

	// The table an operator reads, and the JSON a script reads.
	table := s.MustCLI("secrets", "list", "-detailed")
	row := ""
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "wetix/") {
			row = line
		}
	}
	if !strings.Contains(row, version) {
		t.Errorf("`vault secrets list -detailed` row for wetix/ does not show %s:\n%s", version, table)
	}
	if v := runningVersion(t, s, "wetix"); v != version {
		t.Errorf("running_plugin_version = %q, want %q (the version baked in at build time)", v, version)
	}
}
