package vaulttest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Daemon is a running `vault agent` or `vault proxy`, killed when the test
// ends.
type Daemon struct {
	Dir     string // its config, token file and log live here
	LogFile string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// StartDaemon runs `vault <command> -config=<dir>/<command>.hcl` with the
// given config text and extra arguments. The process gets no VAULT_*
// variables: Agent and Proxy let VAULT_ADDR override vault { address }, even
// when empty, so only the config may say where Vault is and which token to
// use.
func StartDaemon(tb testing.TB, command, dir, config string, args ...string) *Daemon {
	tb.Helper()
	d := &Daemon{Dir: dir, LogFile: filepath.Join(dir, command+".log")}
	confFile := filepath.Join(dir, command+".hcl")
	if err := os.WriteFile(confFile, []byte(config), 0o600); err != nil {
		tb.Fatal(err)
	}
	out, err := os.Create(d.LogFile)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(VaultBinary(tb), append([]string{command, "-config=" + confFile}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = []string{"HOME=" + dir}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VAULT_") && !strings.HasPrefix(kv, "HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		out.Close()
		tb.Fatalf("starting vault %s: %v", command, err)
	}
	d.cmd, d.exited = cmd, make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(d.exited) }()
	tb.Cleanup(d.Kill)
	return d
}

// PID is the daemon's process id.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (d *Daemon) Exited() bool {
	select {
	case <-d.exited:
		return true
	default:
		return false
	}
}

// Kill stops the daemon at once (SIGKILL to its process group).
func (d *Daemon) Kill() {
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.exited
}

// Log returns the daemon's log so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.LogFile)
	return string(b)
}

// WriteTokenFile writes token where a token_file auto-auth method reads it
// and returns the path.
func WriteTokenFile(tb testing.TB, dir, token string) string {
	tb.Helper()
	path := filepath.Join(dir, "vault-token")
	if err := os.WriteFile(path, []byte(token), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// TokenFileAutoAuth is the auto_auth stanza of Agent and Proxy that logs in
// with the token in path.
func TokenFileAutoAuth(path string) string {
	return fmt.Sprintf("auto_auth {\n  method \"token_file\" {\n    config = { token_file_path = %q }\n  }\n}\n", path)
}
