package acceptance

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
)

// TestDevScript runs the demo as `make dev` does, detached: scripts/dev.sh
// up --detach on free ports, with binaries built into a temp dir
// (DEV_BIN_DIR). The token it prints came from the emulator (one
// client-credentials call, as /_emulator/stats says), a second read is
// served from cache as the script promises, and `dev.sh down` leaves no
// process or listener behind.
func TestDevScript(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	root := vaulttest.RepoRoot()
	bin := t.TempDir()
	if err := os.Symlink(vaulttest.VaultBinary(t), filepath.Join(bin, "vault")); err != nil {
		t.Fatal(err)
	}
	plugins := filepath.Join(bin, "plugins")
	if err := os.Mkdir(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	p := vaulttest.BuildPlugin(t, plugins, vaulttest.PluginVersion)
	if err := os.Rename(filepath.Join(plugins, p.File), filepath.Join(plugins, vaulttest.BinaryName)); err != nil {
		t.Fatal(err)
	}
	vaulttest.GoBuild(t, "./cmd/wetix-emulator", filepath.Join(bin, "wetix-emulator"), "")

	state := t.TempDir()
	vaultPort, emuPort := vaulttest.FreePort(t), vaulttest.FreePort(t)
	script := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "dev.sh"), args...)
		cmd.Env = append(os.Environ(), "DEV_BIN_DIR="+bin, "DEV_STATE_DIR="+state,
			"DEV_VAULT_PORT="+strconv.Itoa(vaultPort), "DEV_EMULATOR_PORT="+strconv.Itoa(emuPort),
			"VAULT_ADDR=", "VAULT_TOKEN=", "VAULT_FORMAT=")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// Stop the demo whatever happens; down is idempotent.
	t.Cleanup(func() { script("down") })

	start := time.Now()
	out, err := script("up", "--detach")
	t.Logf("dev.sh up --detach took %s", time.Since(start).Round(10*time.Millisecond))
	if err != nil {
		logs, _ := os.ReadFile(filepath.Join(state, "vault.log"))
		t.Fatalf("dev.sh up --detach: %v\n%s\nvault.log:\n%s", err, out, logs)
	}
	tok := tableField(out, "access_token")
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("dev.sh up printed no access_token (a JWT):\n%s", out)
	}

	// The script's own "try this": a second read is served from cache.
	vaultAddr := fmt.Sprintf("http://127.0.0.1:%d", vaultPort)
	code, body := rawGet(t, vaultAddr, "wetix/token", "root")
	if code != http.StatusOK || !strings.Contains(string(body), tok) {
		t.Errorf("reading the demo's wetix/token: %d; want the token the script printed", code)
	}
	var stats map[string]struct {
		Calls int `json:"calls"`
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/_emulator/stats", emuPort))
	if err != nil {
		t.Fatalf("emulator stats: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	mustJSON(t, raw, &stats)
	if stats["client_credentials"].Calls != 1 || stats["refresh_token"].Calls != 0 {
		t.Errorf("emulator stats %s; want exactly 1 client_credentials call and no refresh", raw)
	}

	// Everything the demo runs: the two group leaders and Vault's plugins.
	var pids []int
	for _, name := range []string{"vault", "emulator"} {
		b, err := os.ReadFile(filepath.Join(state, name+".pid"))
		if err != nil {
			t.Fatalf("no %s.pid: %v", name, err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		pids = append(pids, groupMembers(pid)...)
	}
	if len(pids) < 3 {
		t.Errorf("demo processes %v; want Vault, its plugin and the emulator", pids)
	}

	start = time.Now()
	out, err = script("down")
	t.Logf("dev.sh down took %s", time.Since(start).Round(10*time.Millisecond))
	if err != nil || !strings.Contains(out, "stopped") {
		t.Fatalf("dev.sh down: %v\n%s", err, out)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d still runs after dev.sh down", pid)
		}
	}
	for _, port := range []int{vaultPort, emuPort} {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.Close()
			t.Errorf("port %d still accepts connections after dev.sh down", port)
		}
	}
}

// tableField returns the value of key in `vault read`'s table output.
func tableField(out, key string) string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key {
			return f[1]
		}
	}
	return ""
}

// groupMembers lists the live processes in process group pgid.
func groupMembers(pgid int) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err == nil && g == pgid && alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive is false for a process that is gone or a zombie: an orphaned zombie
// waits for init to reap it, but it runs nothing and holds no port.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}
