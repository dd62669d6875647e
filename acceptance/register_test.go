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
	t.Parallel()
	dir := t.TempDir()
	p := vaulttest.BuildPlugin(t, dir, vaulttest.PluginVersion)
	s := vaulttest.Start(t, vaulttest.Options{PluginDir: dir})

	_, err := s.Client.Logical().Write("sys/plugins/catalog/secret/"+vaulttest.CatalogName, map[string]interface{}{
		"sha256":  p.SHA256,
		"command": p.File,
		"version": vaulttest.PluginVersion,
	})
	if err != nil {
		t.Fatalf("PUT sys/plugins/catalog/secret/wetix: %v", err)
	}

	info := s.MustCLI("plugin", "info", "-format=json", "-version="+vaulttest.PluginVersion, "secret", vaulttest.CatalogName)
	var got struct {
		Version string `json:"version"`
		SHA256  string `json:"sha256"`
		Command string `json:"command"`
	}
	mustJSON(t, []byte(info), &got)
	if got.Version != vaulttest.PluginVersion || got.SHA256 != p.SHA256 || got.Command != p.File {
		t.Errorf("vault plugin info: version %q sha256 %q command %q; want %q %q %q",
			got.Version, got.SHA256, got.Command, vaulttest.PluginVersion, p.SHA256, p.File)
	}

	// An operator pinning a version that was never registered must be told
	// so, not get some other build.
	if out, err := s.CLI("secrets", "enable", "-path=wrong", "-plugin-version=v9.9.9", vaulttest.CatalogName); err == nil {
		t.Errorf("enabling unregistered version v9.9.9 succeeded: %s", out)
	}

	s.MustCLI("secrets", "enable", "-path=wetix", "-plugin-version="+vaulttest.PluginVersion, vaulttest.CatalogName)

	// The table an operator reads, and the JSON a script reads.
	table := s.MustCLI("secrets", "list", "-detailed")
	row := ""
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "wetix/") {
			row = line
		}
	}
	if !strings.Contains(row, vaulttest.PluginVersion) {
		t.Errorf("`vault secrets list -detailed` row for wetix/ does not show %s:\n%s", vaulttest.PluginVersion, table)
	}
	if v := runningVersion(t, s, "wetix"); v != vaulttest.PluginVersion {
		t.Errorf("running_plugin_version = %q, want %q (the version baked in at build time)", v, vaulttest.PluginVersion)
	}
}
