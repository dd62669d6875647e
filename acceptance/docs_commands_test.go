package acceptance

import (
	"archive/zip"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// A documented command block is a fenced block tagged `sh` in the README or
// docs/: TestDocsCommandsRun runs every one, in document order, each as one
// bash script (set -euo pipefail), against a fresh dev Vault per file with
// the plugin and the WeTix emulator. Blocks that need what this machine
// cannot give (make targets, Kubernetes, a download) are tagged `shell`:
// shown the same, never run. The environment a block sees is what an
// operator would have: VAULT_ADDR, VAULT_TOKEN, `vault` on PATH, PLUGIN_DIR
// (Vault's plugin_directory), RELEASE_DIR (a directory holding the release
// zip for this platform and SHA256SUMS), WETIX_CLIENT_ID and
// WETIX_CLIENT_SECRET (the emulator's), NEW_SECRET; key.pem, new.pem,
// order.json, order-1.json and order-2.json in the working directory. environment=production|sandbox is
// pointed at the emulator and /etc/prometheus/ at a scratch directory.

type docBlock struct {
	file string
	line int
	text string
}

var shFence = regexp.MustCompile("^(\\s*)```sh\\s*$")

// docBlocks are the `sh` blocks of one Markdown file, indentation removed.
func docBlocks(t *testing.T, file string) []docBlock {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(vaulttest.RepoRoot(), file))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []docBlock
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		m := shFence.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		indent, start := m[1], i+1
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			body = append(body, strings.TrimPrefix(lines[i], indent))
		}
		blocks = append(blocks, docBlock{file: file, line: start, text: strings.Join(body, "\n") + "\n"})
	}
	return blocks
}

func documentedFiles(t *testing.T) []string {
	t.Helper()
	docs, err := filepath.Glob(filepath.Join(vaulttest.RepoRoot(), "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"README.md"}
	for _, d := range docs {
		files = append(files, filepath.Join("docs", filepath.Base(d)))
	}
	return files
}

var nextBinary = regexp.MustCompile(vaulttest.BinaryName + `-(v\d+\.\d+\.\d+)`)

func TestDocsCommandsRun(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	total := 0
	for _, file := range documentedFiles(t) {
		blocks := docBlocks(t, file)
		if len(blocks) == 0 {
			continue
		}
		total += len(blocks)
		t.Run(file, func(t *testing.T) {
			runDocBlocks(t, blocks)
		})
	}
	// The convention only guards what is tagged sh: a page retagged wholesale
	// would silently stop being checked.
	if total < 12 {
		t.Fatalf("only %d documented command blocks (```sh) in the README and docs/", total)
	}
}

func runDocBlocks(t *testing.T, blocks []docBlock) {
	all := ""
	for _, b := range blocks {
		all += b.text
	}
	scratch, pluginDir, releaseDir := t.TempDir(), t.TempDir(), t.TempDir()
	built := vaulttest.BuildPlugin(t, t.TempDir(), vaulttest.PluginVersion)
	binary := filepath.Join(built.Dir, built.File)
	if strings.Contains(all, "RELEASE_DIR") {
		writeRelease(t, binary, releaseDir)
	} else {
		vaulttest.InstallPlugin(t, binary, pluginDir, vaulttest.BinaryName, vaulttest.PluginVersion)
	}
	for _, m := range nextBinary.FindAllStringSubmatch(all, -1) {
		next := vaulttest.BuildPlugin(t, t.TempDir(), m[1])
		vaulttest.InstallPlugin(t, filepath.Join(next.Dir, next.File), pluginDir, m[0], m[1])
	}

	s := vaulttest.Start(t, vaulttest.Options{PluginDir: pluginDir})
	emu := newEmulator(t, wetixtest.Options{})
	cfg := emu.MountConfig(nil)
	if !strings.Contains(all, "vault secrets enable") {
		p := vaulttest.InstallPlugin(t, binary, pluginDir, vaulttest.BinaryName, vaulttest.PluginVersion)
		s.RegisterPlugin(p)
		s.Mount("wetix", vaulttest.PluginVersion)
		vaulttest.Configure(t, s.Client, "wetix", emu, nil)
	}
	writeDocFixtures(t, scratch)

	env := append(os.Environ(),
		"VAULT_ADDR="+s.Addr, "VAULT_TOKEN="+s.Token, "VAULT_FORMAT=", "HOME="+scratch,
		"PATH="+filepath.Dir(vaulttest.VaultBinary(t))+string(os.PathListSeparator)+os.Getenv("PATH"),
		"PLUGIN_DIR="+pluginDir, "RELEASE_DIR="+releaseDir,
		fmt.Sprintf("WETIX_CLIENT_ID=%v", cfg["client_id"]),
		fmt.Sprintf("WETIX_CLIENT_SECRET=%v", cfg["client_secret"]),
		// The secret change: WeTix accepts one secret, so the "new" one is it.
		fmt.Sprintf("NEW_SECRET=%v", cfg["client_secret"]),
	)
	substitute := strings.NewReplacer(
		"environment=production", "base_url="+emu.URL(),
		"environment=sandbox", "base_url="+emu.URL(),
		"/etc/prometheus/", scratch+"/etc/prometheus/",
	)
	if err := os.MkdirAll(filepath.Join(scratch, "etc", "prometheus"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		script := substitute.Replace(b.text)
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
		cmd.Dir, cmd.Env = scratch, env
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("%s:%d: the documented commands fail (%v):\n%s\n--- output ---\n%s", b.file, b.line, err, b.text, out)
			return // later blocks build on this one
		}
	}
	t.Logf("%d command blocks ran", len(blocks))
}

// writeRelease lays out what a release download gives for this platform:
// the zip holding the binary, and SHA256SUMS over it.
func writeRelease(t *testing.T, binary, dir string) {
	t.Helper()
	name := fmt.Sprintf("%s_%s_%s_%s.zip", vaulttest.BinaryName, strings.TrimPrefix(vaulttest.PluginVersion, "v"), runtime.GOOS, runtime.GOARCH)
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	hdr := &zip.FileHeader{Name: vaulttest.BinaryName, Method: zip.Deflate}
	hdr.SetMode(0o755)
	w, err := zw.CreateHeader(hdr)
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(binary)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(w, in)
	in.Close()
	if err != nil || zw.Close() != nil || f.Close() != nil {
		t.Fatalf("writing %s: %v", name, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if err := os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(hex.EncodeToString(sum[:])+"  "+name+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeDocFixtures puts the files the documented commands name into dir.
func writeDocFixtures(t *testing.T, dir string) {
	t.Helper()
	for _, name := range []string{"key.pem", "new.pem"} {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		pemBytes := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
		if err := os.WriteFile(filepath.Join(dir, name), pemBytes, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	orders := map[string]string{
		"order.json":   `{"sessionKey":"made-up-session","referenceId":"order-1&2","tickets":[{"type":"ADULT","quantity":2}],"customer":{"name":"Zoë <test>","email":"zoe@example.com"}}`,
		"order-1.json": `{"sessionKey":"made-up-session-1","referenceId":"same-second-1","tickets":[{"type":"ADULT","quantity":1}]}`,
		"order-2.json": `{"sessionKey":"made-up-session-2","referenceId":"same-second-2","tickets":[{"type":"ADULT","quantity":1}]}`,
	}
	for name, order := range orders {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(order), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
