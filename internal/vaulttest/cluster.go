package vaulttest

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Cluster is the nodes of one Vault HA cluster on integrated storage (raft),
// with the plugin registered in its catalog.
type Cluster struct {
	Plugin Plugin
	Token  string // root token, valid on every node

	mu    sync.Mutex
	nodes []*Server
	dead  map[*Server]bool
}

// StartCluster starts n raft nodes sharing one plugin directory, joins and
// unseals them, waits until all are voters, and registers the plugin at
// PluginVersion once, through the first node: the catalog lives in raft.
// raftParams go into every node's storage stanza.
func StartCluster(tb testing.TB, n int, raftParams map[string]string) *Cluster {
	tb.Helper()
	RequireLong(tb)
	begin := time.Now()
	pluginDir := tb.TempDir()
	p := BuildPlugin(tb, pluginDir, PluginVersion)
	built := time.Since(begin)

	n1 := Start(tb, Options{Storage: "raft", NodeID: "node1", PluginDir: pluginDir, RaftParams: raftParams})
	// Voters sooner: autopilot promotes a joined node once it has been
	// healthy this long (default 10s).
	if _, err := n1.Client.Logical().Write("sys/storage/raft/autopilot/configuration", map[string]interface{}{
		"server_stabilization_time": "2s",
	}); err != nil {
		tb.Fatalf("autopilot configuration: %v", err)
	}
	c := &Cluster{Plugin: p, Token: n1.Token, nodes: []*Server{n1}, dead: map[*Server]bool{}}
	for i := 2; i <= n; i++ {
		node := Start(tb, Options{
			Storage: "raft", NodeID: fmt.Sprintf("node%d", i), PluginDir: pluginDir, RaftParams: raftParams,
			RetryJoin: []string{n1.Addr},
		})
		node.Token = n1.Token
		node.Client.SetToken(n1.Token)
		c.nodes = append(c.nodes, node)
	}
	for _, node := range c.nodes[1:] {
		node.UnsealWith(n1.Unseal)
	}
	c.waitVoters(tb, n1, n, 90*time.Second)
	n1.RegisterPlugin(p)
	tb.Logf("CLUSTER_START=%.1fs (plugin build %.1fs)", time.Since(begin).Seconds(), built.Seconds())
	return c
}

// waitVoters waits until the raft configuration lists want voters.
func (c *Cluster) waitVoters(tb testing.TB, via *Server, want int, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var last interface{}
	for time.Now().Before(deadline) {
		s, err := via.Client.Logical().Read("sys/storage/raft/configuration")
		if err == nil && s != nil {
			last = s.Data
			cfg, _ := s.Data["config"].(map[string]interface{})
			servers, _ := cfg["servers"].([]interface{})
			voters := 0
			for _, srv := range servers {
				if m, ok := srv.(map[string]interface{}); ok && m["voter"] == true {
					voters++
				}
			}
			if voters == want {
				return
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	tb.Fatalf("raft did not reach %d voters in %v: %v", want, timeout, last)
}

// Alive lists the nodes not marked dead.
func (c *Cluster) Alive() []*Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Server
	for _, n := range c.nodes {
		if !c.dead[n] {
			out = append(out, n)
		}
	}
	return out
}

// MarkDead leaves n out of Alive and Leader from now on (it was killed).
func (c *Cluster) MarkDead(n *Server) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead[n] = true
}

// Leader returns the active node and the standbys, waiting until every live
// node agrees on one active node.
func (c *Cluster) Leader(tb testing.TB) (*Server, []*Server) {
	tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var status []string
	for time.Now().Before(deadline) {
		status = status[:0]
		var active *Server
		var standbys []*Server
		addrs := map[string]bool{}
		for _, n := range c.Alive() {
			l, err := n.Client.Sys().Leader()
			if err != nil {
				status = append(status, fmt.Sprintf("%s: %v", n.Addr, err))
				continue
			}
			status = append(status, fmt.Sprintf("%s: self=%v leader=%s", n.Addr, l.IsSelf, l.LeaderAddress))
			addrs[l.LeaderAddress] = true
			if l.IsSelf {
				active = n
			} else {
				standbys = append(standbys, n)
			}
		}
		if active != nil && len(standbys) == len(c.Alive())-1 && len(addrs) == 1 && addrs[active.Addr] {
			return active, standbys
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("the cluster did not agree on an active node: %v", status)
	return nil, nil
}
