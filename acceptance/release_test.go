package acceptance

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// TestReleasedBinaryRegistersBySHA256AndServesAToken follows docs/install.md
// with the linux/amd64 artifact of `make release`: check the zip against
// SHA256SUMS, unpack it into plugin_directory, register it by the sha256
// SHA256SUMS.binaries publishes and the release's version, enable, configure,
// read a token.
func TestReleasedBinaryRegistersBySHA256AndServesAToken(t *testing.T) {
	vaulttest.RequireLong(t)
	version := strings.TrimSpace(runMake(t, "-s", "version"))
	dist := filepath.Join(t.TempDir(), "dist")
	runMake(t, "release", "PLATFORMS=linux/amd64", "DIST="+dist)

	zipName := "vault-plugin-secrets-wetix_" + strings.TrimPrefix(version, "v") + "_linux_amd64.zip"
	zipPath := filepath.Join(dist, zipName)
	if got, want := sha256File(t, zipPath), publishedSum(t, filepath.Join(dist, "SHA256SUMS"), zipName); got != want {
		t.Fatalf("%s has sha256 %s, SHA256SUMS says %s", zipName, got, want)
	}
	plugins := t.TempDir()
	bin := unzipInto(t, zipPath, plugins)
	sum := publishedSum(t, filepath.Join(dist, "SHA256SUMS.binaries"), "linux_amd64/"+vaulttest.BinaryName)
	if got := sha256File(t, bin); got != sum {
		t.Fatalf("the unzipped binary has sha256 %s, SHA256SUMS.binaries says %s", got, sum)
	}

	s := vaulttest.Start(t, vaulttest.Options{PluginDir: plugins})
	s.MustCLI("plugin", "register", "-sha256="+sum, "-version="+version, "-command="+vaulttest.BinaryName, "secret", vaulttest.CatalogName)
	s.MustCLI("secrets", "enable", "-path=wetix", "-plugin-version="+version, vaulttest.CatalogName)
	var mu sync.Mutex
	agents := map[string]bool{}
	emu := newEmulator(t, wetixtest.Options{OnRequest: func(ri wetixtest.RequestInfo) {
		mu.Lock()
		defer mu.Unlock()
		agents[ri.UserAgent] = true
	}})
	vaulttest.Configure(t, s.Client, "wetix", emu, nil)
	tok, _ := vaulttest.MustReadToken(t, s.Client, "wetix")
	if !emu.IsAccessTokenValid(tok) {
		t.Fatal("the released plugin served a token the emulator did not issue")
	}
	if v := runningVersion(t, s, "wetix"); v != version {
		t.Errorf("the released binary runs as %q, want %q", v, version)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "vault-plugin-secrets-wetix/" + version; len(agents) != 1 || !agents[want] {
		t.Errorf("User-Agents WeTix saw: %v, want only %q", agents, want)
	}
}

func runMake(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("make", args...)
	cmd.Dir = vaulttest.RepoRoot()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// publishedSum is name's line in a sha256sum-format file.
func publishedSum(t *testing.T, sums, name string) string {
	t.Helper()
	raw, err := os.ReadFile(sums)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		sum, file, ok := strings.Cut(line, "  ")
		if ok && file == name {
			return sum
		}
	}
	t.Fatalf("%s does not list %s:\n%s", filepath.Base(sums), name, raw)
	return ""
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// unzipInto extracts the release zip's one binary into dir, keeping the mode
// the zip gives it, as unzip does.
func unzipInto(t *testing.T, zipPath, dir string) string {
	t.Helper()
	zr, err := zip.OpenReader(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) != 1 || zr.File[0].Name != vaulttest.BinaryName {
		t.Fatalf("%s holds %d entries, want only %s", filepath.Base(zipPath), len(zr.File), vaulttest.BinaryName)
	}
	f := zr.File[0]
	in, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	dst := filepath.Join(dir, f.Name)
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_EXCL, f.Mode().Perm())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}
