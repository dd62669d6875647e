package main

import (
	"archive/zip"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReleaseIsReproducible builds the release of this commit twice, from two
// clones at different paths, and compares every byte: what an operator or a
// distributor rebuilding a published version would check. linux/amd64 only,
// to keep it cheap; the other platforms go through the same code.
func TestReleaseIsReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin twice from fresh clones; runs without -short")
	}
	root := repoRoot()
	head := git(t, root, "rev-parse", "HEAD")
	if dirty := git(t, root, "status", "--porcelain", "--untracked-files=no"); dirty != "" {
		t.Logf("the worktree has uncommitted changes; this builds the committed HEAD %s only", head)
	}
	// A version that is no default anywhere, so the stamp is seen to work.
	const version = "v0.2.1-repro.1"
	a := releaseFrom(t, root, head, filepath.Join(t.TempDir(), "a"), version)
	b := releaseFrom(t, root, head, filepath.Join(t.TempDir(), "some", "deeper", "checkout-b"), version)

	files := distFiles(t, a.dist)
	if got, want := strings.Join(files, " "), strings.Join(distFiles(t, b.dist), " "); got != want {
		t.Fatalf("the two releases hold different files:\n%s\n%s", got, want)
	}
	wantFiles := "SHA256SUMS SHA256SUMS.binaries linux_amd64/vault-plugin-secrets-wetix vault-plugin-secrets-wetix_0.2.1-repro.1_linux_amd64.zip"
	if got := strings.Join(files, " "); got != wantFiles {
		t.Fatalf("release files %q, want %q", got, wantFiles)
	}
	for _, f := range files {
		x, y := readFile(t, filepath.Join(a.dist, f)), readFile(t, filepath.Join(b.dist, f))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between the two builds (%d and %d bytes)", f, len(x), len(y))
		}
	}

	bin := readFile(t, filepath.Join(a.dist, "linux_amd64", pluginName))
	if !bytes.Contains(bin, []byte(version)) {
		t.Errorf("the binary does not carry the version %s", version)
	}
	for _, dir := range []string{a.src, b.src} {
		if bytes.Contains(bin, []byte(dir)) {
			t.Errorf("the binary names its checkout %s (-trimpath lost)", dir)
		}
	}
	checkZip(t, filepath.Join(a.dist, "vault-plugin-secrets-wetix_0.2.1-repro.1_linux_amd64.zip"), bin, commitTime(t, root, head))
	checkSums(t, a.dist)
}

type built struct{ src, dist string }

func releaseFrom(t *testing.T, root, commit, src, version string) built {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
		t.Fatal(err)
	}
	git(t, root, "clone", "--quiet", "--shared", "--no-checkout", root, src)
	git(t, src, "checkout", "--quiet", "--detach", commit)
	dist := filepath.Join(src, "dist")
	start := time.Now()
	cmd := exec.Command("make", "release", "VERSION="+version, "PLATFORMS=linux/amd64")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make release in %s: %v\n%s", src, err, out)
	}
	t.Logf("make release in %s: %s", src, time.Since(start).Round(time.Second))
	return built{src: src, dist: dist}
}

func checkZip(t *testing.T, path string, bin []byte, mtime time.Time) {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	if len(zr.File) != 1 || zr.File[0].Name != pluginName {
		t.Fatalf("zip entries %v, want only %s", zr.File, pluginName)
	}
	f := zr.File[0]
	if !f.Modified.Equal(mtime) || f.Mode().Perm() != 0o755 {
		t.Errorf("zip entry modified %s mode %s, want the commit's time %s and 0755", f.Modified, f.Mode(), mtime)
	}
	rc, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), bin) {
		t.Error("the zipped binary is not the bare one SHA256SUMS.binaries lists")
	}
}

// checkSums runs the check an operator runs, with the tool they have.
func checkSums(t *testing.T, dist string) {
	t.Helper()
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Fatalf("sha256sum not found: the operator's check cannot be shown: %v", err)
	}
	cmd := exec.Command("sha256sum", "--check", "--strict", "SHA256SUMS", "SHA256SUMS.binaries")
	cmd.Dir = dist
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum --check: %v\n%s", err, out)
	}
}

func distFiles(t *testing.T, dist string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dist, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dist, path)
		files = append(files, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func commitTime(t *testing.T, root, commit string) time.Time {
	t.Helper()
	secs, err := strconv.ParseInt(git(t, root, "log", "-1", "--format=%ct", commit), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return time.Unix(secs, 0).UTC()
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}
