package acceptance

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
)

// firstRun is a copy of the files scripts/build-vault.sh reads, so the
// script's .bin/ is a temp dir and nothing of the real checkout changes.
type firstRun struct {
	t     *testing.T
	root  string
	cache string
}

func newFirstRun(t *testing.T) *firstRun {
	t.Helper()
	root := t.TempDir()
	for _, f := range []string{"scripts/build-vault.sh", "tools/vault/go.mod", "tools/vault/supported-versions"} {
		src, err := os.ReadFile(filepath.Join(vaulttest.RepoRoot(), f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, f), src, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &firstRun{t: t, root: root, cache: t.TempDir()}
}

// fakeVault writes an executable named vault that answers `vault version`
// as a Vault of that version would ("" answers as OpenBao does).
func fakeVault(t *testing.T, version string) string {
	t.Helper()
	dir := t.TempDir()
	line := "Vault " + version + " (0123abcd), built 2025-11-18T21:04:32Z"
	if version == "" {
		line = "OpenBao v2.6.2 (0123abcd), built 2025-11-18T21:04:32Z"
	}
	path := filepath.Join(dir, "vault")
	if err := os.WriteFile(path, []byte("#!/bin/sh\necho '"+line+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// run runs the script as make does, with pathDirs first on a PATH that has
// the system tools but no Go (so a build, if one starts, stops right after
// announcing itself) and no other vault.
func (r *firstRun) run(vaultBinary string, pathDirs ...string) (string, error) {
	r.t.Helper()
	for _, d := range []string{"/usr/bin", "/bin"} {
		if _, err := os.Stat(filepath.Join(d, "vault")); err == nil {
			r.t.Fatalf("%s/vault exists: this test needs a PATH without a vault of its own", d)
		}
	}
	cmd := exec.Command("bash", filepath.Join(r.root, "scripts", "build-vault.sh"))
	cmd.Env = []string{
		"HOME=" + r.t.TempDir(),
		"PATH=" + strings.Join(append(pathDirs, "/usr/bin", "/bin"), ":"),
		"VAULT_BUILD_CACHE=" + r.cache,
		"USER_VAULT_BINARY=" + vaultBinary,
		"VAULT_BINARY=" + filepath.Join(r.root, ".bin", "vault"),
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (r *firstRun) linkTarget() string {
	r.t.Helper()
	target, err := os.Readlink(filepath.Join(r.root, ".bin", "vault"))
	if err != nil {
		return ""
	}
	return target
}

// TestFirstRunUsesTheUsersVault: make dev and make test run .bin/vault, which
// build-vault.sh points at a Vault the user already has (VAULT_BINARY, else
// on PATH) when its version is supported, instead of building one; a named
// binary of another version is refused with the supported list; and when a
// build is unavoidable it says so, with the time it takes, before it starts.
func TestFirstRunUsesTheUsersVault(t *testing.T) {
	supported, old, bao := fakeVault(t, "v1.21.0"), fakeVault(t, "v1.20.4"), fakeVault(t, "")

	t.Run("VAULT_BINARY supported", func(t *testing.T) {
		r := newFirstRun(t)
		out, err := r.run(supported)
		if err != nil || r.linkTarget() != supported || !strings.Contains(out, "using your Vault v1.21.0") {
			t.Fatalf("err=%v link=%q\n%s", err, r.linkTarget(), out)
		}
		// A later run without VAULT_BINARY keeps it rather than building.
		out, err = r.run("")
		if err != nil || r.linkTarget() != supported || !strings.Contains(out, "linked by an earlier run") {
			t.Fatalf("second run: err=%v link=%q\n%s", err, r.linkTarget(), out)
		}
	})

	t.Run("VAULT_BINARY unsupported", func(t *testing.T) {
		for _, bin := range []string{old, bao, "/nonexistent/vault"} {
			r := newFirstRun(t)
			out, err := r.run(bin)
			if err == nil || r.linkTarget() != "" || !strings.Contains(out, "VAULT_BINARY="+bin) || strings.Contains(out, "building") {
				t.Fatalf("VAULT_BINARY=%s: err=%v link=%q; want a refusal naming it and no build\n%s", bin, err, r.linkTarget(), out)
			}
			if bin != "/nonexistent/vault" && !strings.Contains(out, "supported: 1.21.*") {
				t.Fatalf("VAULT_BINARY=%s: the refusal does not list the supported versions\n%s", bin, out)
			}
		}
		if out, _ := newFirstRun(t).run(old); !strings.Contains(out, "is Vault v1.20.4") {
			t.Fatalf("the refusal does not name the version found\n%s", out)
		}
	})

	t.Run("vault on PATH", func(t *testing.T) {
		r := newFirstRun(t)
		out, err := r.run("", filepath.Dir(supported))
		if err != nil || r.linkTarget() != supported || !strings.Contains(out, "(vault on PATH)") {
			t.Fatalf("err=%v link=%q\n%s", err, r.linkTarget(), out)
		}
	})

	t.Run("build cache before PATH", func(t *testing.T) {
		r := newFirstRun(t)
		cached := fakeVault(t, "v1.21.1")
		src, _ := os.ReadFile(cached)
		if err := os.WriteFile(filepath.Join(r.cache, "vault-v1.21.1"), src, 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := r.run("", filepath.Dir(supported))
		if err != nil || r.linkTarget() != "" || !strings.Contains(out, "copied Vault v1.21.1 from the build cache") {
			t.Fatalf("err=%v link=%q\n%s", err, r.linkTarget(), out)
		}
	})

	t.Run("build announced", func(t *testing.T) {
		r := newFirstRun(t)
		out, err := r.run("", filepath.Dir(old))
		announce := strings.Index(out, "building Vault v1.21.1 from source: about 15-20 minutes on 2 cores, once")
		if err == nil || announce < 0 || !strings.Contains(out, "vault is Vault v1.20.4, not one this plugin is tested with") ||
			!strings.Contains(out, "set VAULT_BINARY") || strings.Index(out, "go not found") < announce {
			t.Fatalf("err=%v; want the build announced (why, how long, how to skip) before it starts\n%s", err, out)
		}
	})
}
