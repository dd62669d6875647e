package vaulttest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// CatalogName is the name the plugin is registered under in the catalog
// (sys/plugins/catalog/secret/wetix); BinaryName is its executable's name.
const (
	CatalogName = "wetix"
	BinaryName  = "vault-plugin-secrets-wetix"
)

const module = "github.com/wetix-oss/vault-plugin-secrets-wetix"

// PluginVersion is the version every suite builds, registers and mounts the
// plugin as, unless it is testing another one (an upgrade).
const PluginVersion = "v0.2.0"

// RepoRoot is the repository root, found from this file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// VaultBinary returns the vault binary to run: $VAULT_BINARY, else
// .bin/vault. A missing binary fails the test with the command that builds
// it: acceptance tests never pass by skipping.
func VaultBinary(tb testing.TB) string {
	tb.Helper()
	path := os.Getenv("VAULT_BINARY")
	if path == "" {
		path = filepath.Join(RepoRoot(), ".bin", "vault")
	}
	if _, err := os.Stat(path); err != nil {
		tb.Fatalf("no Vault binary at %s: build it with `make vault` (scripts/build-vault.sh), or run `go test -short` to run only unit tests", path)
	}
	return path
}

// RequireLong skips a test under -short: the unit loop. CI runs without
// -short, and there a missing binary is a failure, not a skip.
func RequireLong(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("starts real Vault servers; runs without -short (make test)")
	}
}

var (
	buildMu sync.Mutex
	builds  = map[string]string{}
)

// Plugin is a plugin binary in a plugin directory.
type Plugin struct {
	Dir     string // the plugin directory Vault is given
	File    string // the binary's file name inside Dir (the catalog "command")
	SHA256  string
	Version string
	// Name is the catalog name; empty means CatalogName (this plugin).
	Name string
	// Args are the catalog's args: what Vault passes the binary.
	Args []string
}

// BuildPlugin compiles the plugin with the given version baked in and copies
// it into dir under a name that includes the version, so several versions can
// sit side by side in one plugin directory. Builds are cached per process.
func BuildPlugin(tb testing.TB, dir, version string) Plugin {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	src, ok := builds[version]
	if !ok {
		out, err := os.MkdirTemp("", "wetix-plugin-build-")
		if err != nil {
			tb.Fatal(err)
		}
		src = filepath.Join(out, BinaryName)
		GoBuild(tb, "./cmd/"+BinaryName, src, fmt.Sprintf("-X %s.Version=%s", module, version))
		builds[version] = src
	}
	return InstallPlugin(tb, src, dir, BinaryName+"-"+version, version)
}

// GoBuild compiles the package pkg (a path relative to the repository root,
// like "./cmd/wetix-emulator") into the executable dst, static, with ldflags.
func GoBuild(tb testing.TB, pkg, dst, ldflags string) {
	tb.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", dst, pkg)
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
}

// InstallPlugin copies the executable src into the plugin directory dir as
// name and returns it ready to register, with its sha256. version may be
// empty: Vault then takes the version the plugin reports.
func InstallPlugin(tb testing.TB, src, dir, name, version string) Plugin {
	tb.Helper()
	dst := filepath.Join(dir, name)
	if err := copyFile(src, dst); err != nil {
		tb.Fatal(err)
	}
	sum, err := fileSHA256(dst)
	if err != nil {
		tb.Fatal(err)
	}
	return Plugin{Dir: dir, File: name, SHA256: sum, Version: version}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ReleasedV010 is the commit the v0.1.0 plugin was released from; the
// upgrade test builds that binary, unchanged, to upgrade from it.
const ReleasedV010 = "ebbc2ae0f53bf24e06021ef5d2a8e491b575d051"

// BuildReleasedPlugin compiles the plugin as it was at commit (taken from
// this repository's history with git archive, so nothing of today's code
// leaks in) with version baked in, and installs it into dir.
func BuildReleasedPlugin(tb testing.TB, dir, commit, version string) Plugin {
	tb.Helper()
	src := tb.TempDir()
	archive := exec.Command("sh", "-c", `git archive --format=tar "$1" | tar -x -C "$2"`, "sh", commit, src)
	archive.Dir = RepoRoot()
	if b, err := archive.CombinedOutput(); err != nil {
		tb.Fatalf("extracting the plugin at %s (the test needs this repository's history: a full clone): %v\n%s", commit, err, b)
	}
	bin := filepath.Join(tb.TempDir(), BinaryName)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", fmt.Sprintf("-X %s.Version=%s", module, version), "-o", bin, "./cmd/"+BinaryName)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("building the plugin at %s: %v\n%s", commit, err, b)
	}
	return InstallPlugin(tb, bin, dir, BinaryName+"-"+version, version)
}
