package vaulttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// Options shape a Vault server.
type Options struct {
	// Storage is "inmem" (a -dev server), "file" or "raft".
	Storage string
	// PluginDir is the plugin_directory; required to register the plugin.
	PluginDir string
	// DataDir keeps file or raft storage; a temp dir when empty. Reuse it to
	// restart the same server.
	DataDir string
	// LogLevel defaults to "info"; the leak tests use "trace".
	LogLevel string
	// NodeID and RetryJoin make a raft cluster member.
	NodeID    string
	RetryJoin []string
	// RaftParams adds parameters to the storage "raft" stanza, each written
	// as key = "value" (Vault reads them all as strings), e.g.
	// performance_multiplier or autopilot_reconcile_interval.
	RaftParams map[string]string
	// Addr and ClusterAddr default to free loopback ports.
	Addr, ClusterAddr string
	// Env is added to the server's environment (inherited by plugins).
	Env []string
}

// Server is a running Vault process.
type Server struct {
	tb      testing.TB
	opts    Options
	Addr    string // http://127.0.0.1:port
	Token   string // root token
	Client  *api.Client
	LogFile string
	Unseal  string // unseal key (file/raft)
	cmd     *exec.Cmd
	exited  chan struct{}
	mu      sync.Mutex
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start runs a Vault server and waits until it answers, is unsealed and has
// a root token. It is killed when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.Storage == "" {
		opts.Storage = "inmem"
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.DataDir == "" {
		opts.DataDir = tb.TempDir()
	}
	if opts.Addr == "" {
		opts.Addr = fmt.Sprintf("127.0.0.1:%d", FreePort(tb))
	}
	if opts.ClusterAddr == "" {
		opts.ClusterAddr = fmt.Sprintf("127.0.0.1:%d", FreePort(tb))
	}
	s := &Server{tb: tb, opts: opts, Addr: "http://" + opts.Addr, LogFile: filepath.Join(opts.DataDir, "vault.log")}
	s.launch()
	tb.Cleanup(s.Kill)
	if opts.Storage == "inmem" {
		s.Token = "root"
		s.connect()
		return s
	}
	s.connect()
	s.initAndUnseal()
	return s
}

func (s *Server) configFile() string {
	o := s.opts
	var b strings.Builder
	fmt.Fprintf(&b, "disable_mlock = true\nui = false\nlog_level = %q\n", o.LogLevel)
	if o.PluginDir != "" {
		fmt.Fprintf(&b, "plugin_directory = %q\n", o.PluginDir)
	}
	if o.Storage != "inmem" {
		fmt.Fprintf(&b, "api_addr = %q\ncluster_addr = %q\n", "http://"+o.Addr, "https://"+o.ClusterAddr)
		fmt.Fprintf(&b, "listener \"tcp\" {\n  address = %q\n  cluster_address = %q\n  tls_disable = true\n}\n", o.Addr, o.ClusterAddr)
	}
	switch o.Storage {
	case "file":
		fmt.Fprintf(&b, "storage \"file\" {\n  path = %q\n}\n", filepath.Join(o.DataDir, "file"))
	case "raft":
		node := o.NodeID
		if node == "" {
			node = "node1"
		}
		fmt.Fprintf(&b, "storage \"raft\" {\n  path = %q\n  node_id = %q\n", filepath.Join(o.DataDir, "raft"), node)
		keys := make([]string, 0, len(o.RaftParams))
		for k := range o.RaftParams {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "  %s = %q\n", k, o.RaftParams[k])
		}
		for _, j := range o.RetryJoin {
			fmt.Fprintf(&b, "  retry_join {\n    leader_api_addr = %q\n  }\n", j)
		}
		b.WriteString("}\n")
	}
	path := filepath.Join(o.DataDir, "vault.hcl")
	if err := os.MkdirAll(filepath.Join(o.DataDir, "raft"), 0o700); err != nil {
		s.tb.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		s.tb.Fatal(err)
	}
	return path
}

func (s *Server) launch() {
	args := []string{"server", "-config=" + s.configFile()}
	if s.opts.Storage == "inmem" {
		args = append(args, "-dev", "-dev-root-token-id=root", "-dev-listen-address="+s.opts.Addr, "-dev-no-store-token")
	}
	log, err := os.OpenFile(s.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.tb.Fatal(err)
	}
	cmd := exec.Command(VaultBinary(s.tb), args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), "VAULT_DISABLE_USER_LOCKOUT=true", "HOME="+s.opts.DataDir)
	cmd.Env = append(cmd.Env, s.opts.Env...)
	// Own process group, so Kill reaches the plugin processes Vault started.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.tb.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
}

func (s *Server) connect() {
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	c, err := api.NewClient(cfg)
	if err != nil {
		s.tb.Fatal(err)
	}
	c.SetToken(s.Token)
	s.Client = c
	s.waitUp()
}

// waitUp polls the health endpoint until Vault answers at all.
func (s *Server) waitUp() {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			s.tb.Fatalf("vault exited while starting; log:\n%s", s.Log())
		default:
		}
		if _, err := s.Client.Sys().Health(); err == nil {
			return
		} else if !strings.Contains(err.Error(), "connection refused") {
			return // sealed or uninitialised still counts as up
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.tb.Fatalf("vault did not start in 60s; log:\n%s", s.Log())
}

func (s *Server) initAndUnseal() {
	if s.opts.Storage == "raft" && len(s.opts.RetryJoin) > 0 {
		return // a joining node is unsealed by the caller with the leader's key
	}
	init, err := s.Client.Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		s.tb.Fatalf("vault init: %v", err)
	}
	s.Unseal = init.Keys[0]
	s.Token = init.RootToken
	s.Client.SetToken(s.Token)
	s.UnsealWith(s.Unseal)
}

// UnsealWith unseals with key and waits until the node serves requests.
func (s *Server) UnsealWith(key string) {
	s.tb.Helper()
	s.Unseal = key
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		st, err := s.Client.Sys().Unseal(key)
		if err == nil && !st.Sealed {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.WaitActiveOrStandby()
}

// WaitActiveOrStandby waits until the node is unsealed and has a leader.
func (s *Server) WaitActiveOrStandby() {
	s.tb.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		h, err := s.Client.Sys().Health()
		if err == nil && !h.Sealed && h.Initialized {
			if l, err := s.Client.Sys().Leader(); err == nil && l.LeaderAddress != "" {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.tb.Fatalf("vault at %s did not become ready; log:\n%s", s.Addr, s.Log())
}

// Kill stops the server and every plugin it started, at once (SIGKILL).
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-exited
}

// Stop shuts the server down gracefully (SIGTERM), then kills stragglers.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
	}
	s.Kill()
}

// Restart stops the server and starts it again on the same storage, ports
// and config, then unseals it with the key from init.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.launch()
	s.waitUp()
	if s.opts.Storage != "inmem" {
		s.UnsealWith(s.Unseal)
	}
}

// Log returns the server's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.LogFile)
	return string(b)
}

// CLI runs the real vault CLI against this server and returns its stdout.
func (s *Server) CLI(args ...string) (string, error) {
	return s.CLIAs(s.Token, args...)
}

// CLIAs runs the vault CLI against this server with token (an app's rather
// than root's); like CLI, an error carries stderr.
func (s *Server) CLIAs(token string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, VaultBinary(s.tb), args...)
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+s.Addr, "VAULT_TOKEN="+token, "HOME="+s.opts.DataDir, "VAULT_FORMAT=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("vault %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// MustCLI is CLI that fails the test on error.
func (s *Server) MustCLI(args ...string) string {
	s.tb.Helper()
	out, err := s.CLI(args...)
	if err != nil {
		s.tb.Fatal(err)
	}
	return out
}

// RegisterPlugin adds p to the catalog by sha256 and version, as an
// operator would.
func (s *Server) RegisterPlugin(p Plugin) {
	s.tb.Helper()
	name := p.Name
	if name == "" {
		name = CatalogName
	}
	err := s.Client.Sys().RegisterPluginWithContext(context.Background(), &api.RegisterPluginInput{
		Name:    name,
		Type:    api.PluginTypeSecrets,
		Command: p.File,
		Args:    p.Args,
		SHA256:  p.SHA256,
		Version: p.Version,
	})
	if err != nil {
		s.tb.Fatalf("registering the plugin %s: %v", name, err)
	}
}

// Mount enables the plugin at path with the given version.
func (s *Server) Mount(path, version string) {
	s.tb.Helper()
	if err := s.TryMount(path, version); err != nil {
		s.tb.Fatalf("enabling the plugin at %s: %v", path, err)
	}
}

// TryMount is Mount returning the error, for subtests and goroutines: Mount
// fails the test that started the server.
func (s *Server) TryMount(path, version string) error {
	return s.Client.Sys().Mount(path, &api.MountInput{Type: CatalogName, Config: api.MountConfigInput{PluginVersion: version}})
}

// PluginPIDs lists the running processes of the plugin binary under this
// server, for crash tests that kill -9 them.
func (s *Server) PluginPIDs() []int {
	s.mu.Lock()
	pgid := s.cmd.Process.Pid
	s.mu.Unlock()
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err != nil || g != pgid || pid == pgid {
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if strings.Contains(filepath.Base(exe), BinaryName) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// JSON decodes v from a response's data, for tests that want typed fields.
func JSON(data map[string]interface{}, v interface{}) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// PID is the process id of the vault server (the leader of the process
// group its plugins run in).
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd.Process.Pid
}
