package acceptance

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// TestOperations walks an operator through a reload, an upgrade and a
// plugin crash. None of them may cost the mount its token: each is followed
// by a read that must return the same token with no call to WeTix.
func TestOperations(t *testing.T) {
	vaulttest.RequireLong(t)
	t.Parallel()
	s, p := vaulttest.StartWithPlugin(t, vaulttest.Options{})
	s.Mount("wetix", vaulttest.PluginVersion)
	emu := newEmulator(t, wetixtest.Options{})
	vaulttest.Configure(t, s.Client, "wetix", emu, nil)
	tok, _ := vaulttest.MustReadToken(t, s.Client, "wetix")
	emu.ResetCounts()

	sameToken := func(step string) {
		t.Helper()
		got, _ := vaulttest.MustReadToken(t, s.Client, "wetix")
		if got != tok {
			t.Errorf("after %s the mount serves a different token", step)
		}
		if n := emu.TotalCalls(); n != 0 {
			t.Errorf("after %s the read called WeTix %d times, want 0", step, n)
		}
	}
	onePID := func(step string) int {
		t.Helper()
		var pids []int
		// A restarted plugin may take a moment to show up.
		vaulttest.WaitFor(10*time.Second, func() bool { pids = s.PluginPIDs(); return len(pids) == 1 })
		if len(pids) != 1 {
			t.Fatalf("after %s: plugin processes %v, want exactly one", step, pids)
		}
		return pids[0]
	}

	// Reload: Vault restarts the plugin process.
	pid := onePID("the first read")
	s.MustCLI("plugin", "reload", "-plugin="+vaulttest.CatalogName)
	sameToken("vault plugin reload")
	if now := onePID("vault plugin reload"); now == pid {
		t.Errorf("vault plugin reload left plugin process %d running: nothing was reloaded", pid)
	} else {
		pid = now
	}

	// Upgrade: register v0.3.0 beside v0.2.0, pin the mount to it, reload.
	const next = "v0.3.0"
	s.RegisterPlugin(vaulttest.BuildPlugin(t, p.Dir, next))
	s.MustCLI("secrets", "tune", "-plugin-version="+next, "wetix")
	s.MustCLI("plugin", "reload", "-plugin="+vaulttest.CatalogName)
	if v := runningVersion(t, s, "wetix"); v != next {
		t.Errorf("after tune and reload the mount runs %q, want %q", v, next)
	}
	sameToken("the upgrade to " + next)
	pid = onePID("the upgrade")

	// Crash: kill -9 the plugin. Vault starts a new one on the next request.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	// Vault restarts the plugin on the first request after it has seen the
	// process exit (go-plugin logs it); a request in the few milliseconds
	// before that gets a 500 "rpc error: Unavailable" from Vault itself.
	exited := fmt.Sprintf("plugin process exited: plugin=%s id=%d", filepath.Join(p.Dir, vaulttest.BinaryName+"-"+next), pid)
	if !vaulttest.WaitFor(10*time.Second, func() bool { return strings.Contains(s.Log(), exited) }) {
		t.Fatalf("Vault did not notice the plugin's death in 10s (no %q in its log)", exited)
	}
	sameToken("kill -9 of the plugin")
	if now := onePID("kill -9"); now == pid {
		t.Errorf("plugin process %d survived kill -9", pid)
	}
	if v := runningVersion(t, s, "wetix"); v != next {
		t.Errorf("after the crash the mount runs %q, want %q", v, next)
	}
}
