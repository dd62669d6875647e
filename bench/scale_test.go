package bench

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// scaleMount is where the measured plugin is mounted.
const scaleMount = "wetix"

type scaleSettings struct {
	via                    string // "direct" or "proxy"
	rate                   float64
	duration, ttl, sample  time.Duration
	readers                int
	label, out             string
	list                   bool // count the leases with LIST at the end
	pluginFile, pluginVers string
	// storage is Vault's: "inmem" (a dev server, the default) or "raft" (a
	// single-node raft server, as in production: lease entries live on disk,
	// only the expiration manager's index in memory).
	storage string
	// path is the path readers read: token (leased) or static-token (the
	// same token without a lease, issue 18).
	path string
}

func (s scaleSettings) unleased() bool { return s.path == "static-token" }

func loadScaleSettings(b *testing.B) scaleSettings {
	s := scaleSettings{via: os.Getenv("WETIX_SCALE_VIA"), rate: 1000, duration: 10 * time.Minute, ttl: time.Hour,
		readers: 32, sample: 30 * time.Second, label: os.Getenv("WETIX_SCALE_LABEL"), out: os.Getenv("WETIX_SCALE_OUT"),
		list: os.Getenv("WETIX_SCALE_LIST") != "0", pluginFile: os.Getenv("WETIX_PLUGIN_BINARY"), pluginVers: os.Getenv("WETIX_PLUGIN_VERSION"),
		storage: os.Getenv("WETIX_SCALE_STORAGE"), path: os.Getenv("WETIX_SCALE_PATH")}
	s.path = oneOf(b, "WETIX_SCALE_PATH", s.path, "token (leased) or static-token (unleased)", "token", "static-token")
	s.storage = oneOf(b, "WETIX_SCALE_STORAGE", s.storage, "inmem (a dev server) or raft", "inmem", "raft")
	if s.via == "" {
		b.Skip("one cell of the scale envelope; runs only when asked: WETIX_SCALE_VIA=direct|proxy go test -run '^$' -bench '^BenchmarkScale$' -benchtime 1x -timeout 0 ./bench (or `make scale` for the matrix)")
	}
	if s.via != "direct" && s.via != "proxy" {
		b.Fatalf("WETIX_SCALE_VIA=%q: want direct (readers talk to Vault) or proxy (readers talk to a caching Vault Proxy)", s.via)
	}
	for env, dst := range map[string]*time.Duration{"WETIX_SCALE_DURATION": &s.duration, "WETIX_SCALE_TTL": &s.ttl, "WETIX_SCALE_SAMPLE": &s.sample} {
		if v := os.Getenv(env); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				b.Fatalf("%s=%q: want a positive Go duration such as 90s or 10m", env, v)
			}
			*dst = d
		}
	}
	if v := os.Getenv("WETIX_SCALE_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 {
			b.Fatalf("WETIX_SCALE_RATE=%q: want reads per second, a positive number", v)
		}
		s.rate = r
	}
	if v := os.Getenv("WETIX_SCALE_READERS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("WETIX_SCALE_READERS=%q: want a positive integer", v)
		}
		s.readers = n
	}
	if s.ttl < time.Second || s.ttl%time.Second != 0 {
		b.Fatalf("WETIX_SCALE_TTL=%s: the mount's ttl is whole seconds, at least 1s", s.ttl)
	}
	if s.label == "" {
		s.label = "current build"
		if s.pluginFile != "" {
			s.label = s.pluginFile
		}
	}
	return s
}

// scaleCell is one Vault dev server with the plugin mounted, the emulator
// behind it, and optionally a Vault Proxy in front.
type scaleCell struct {
	b       *testing.B
	set     scaleSettings
	srv     *vaulttest.Server
	emu     *wetixtest.Server
	proxy   *vaulttest.Proxy
	plugin  pluginInfo
	first   firstRead
	hc      *http.Client // for sys/metrics, straight to Vault
	seen    *seenSet
	samples []scaleSample
}

type pluginInfo struct{ File, Version, SHA256 string }

// firstRead is what one read of the token said about its lease, before the
// load.
type firstRead struct {
	Renewable     bool
	LeaseDuration int
}

// BenchmarkScale measures one cell of the scale envelope: live leases and
// memory of Vault while readers read <mount>/token at a fixed rate, straight
// to Vault or through a caching Vault Proxy. Run it with -benchtime 1x; it
// measures with its own paced load, not b.N, and fails only when something
// is broken (the setup, an unreadable metric), never on a figure.
func BenchmarkScale(b *testing.B) {
	set := loadScaleSettings(b)
	c := newScaleCell(b, set)
	c.run()
}

func newScaleCell(b *testing.B, set scaleSettings) *scaleCell {
	dir := b.TempDir()
	c := &scaleCell{b: b, set: set, hc: &http.Client{Timeout: 60 * time.Second}, seen: newSeenSet(set.unleased())}
	p := pluginBinary(b, dir)
	c.emu = wetixtest.New(wetixtest.Options{ClientID: benchClientID, ClientSecret: benchClientSecret})
	b.Cleanup(c.emu.Close)
	c.srv = vaulttest.Start(b, vaulttest.Options{PluginDir: dir, LogLevel: "warn", Storage: set.storage})
	c.srv.RegisterPlugin(p)
	if p.Version == "" {
		p.Version = registeredVersion(b, c.srv)
	}
	c.plugin = pluginInfo{File: set.pluginFile, Version: p.Version, SHA256: p.SHA256}
	if c.plugin.File == "" {
		c.plugin.File = "built from this checkout"
	} else if rel, err := filepath.Rel(vaulttest.RepoRoot(), c.plugin.File); err == nil && !strings.HasPrefix(rel, "..") {
		// The report names the binary the same way on every machine.
		c.plugin.File = rel
	}
	c.srv.Mount(scaleMount, p.Version)
	vaulttest.Configure(b, c.srv.Client, scaleMount, c.emu, map[string]interface{}{"ttl": int(set.ttl.Seconds())})

	if set.unleased() {
		sec, err := c.srv.Client.Logical().Read(scaleMount + "/static-token")
		if err != nil || sec == nil || sec.Data["access_token"] == nil {
			b.Fatalf("the first read of %s/static-token: %v", scaleMount, err)
		}
		if sec.LeaseID != "" {
			b.Fatalf("%s/static-token answered with a lease", scaleMount)
		}
	} else {
		r := vaulttest.ReadToken(c.srv.Client, scaleMount)
		if _, err := r.Token(); err != nil {
			b.Fatalf("the first read of %s/token: %v", scaleMount, err)
		}
		c.first = firstRead{Renewable: r.Secret.Renewable, LeaseDuration: r.Secret.LeaseDuration}
		if r.Secret.LeaseID == "" {
			b.Fatalf("%s/token answered without a lease", scaleMount)
		}
	}
	if set.via == "proxy" {
		// Proxy's own request log (info) would be a log line per read.
		c.proxy = vaulttest.StartProxy(b, c.srv, c.srv.Token, vaulttest.ProxyOptions{LogLevel: "warn"})
	}
	return c
}

// registeredVersion is the version Vault took for the plugin registered
// without one: the version the binary reports.
func registeredVersion(tb testing.TB, srv *vaulttest.Server) string {
	list, err := srv.Client.Sys().ListPlugins(&api.ListPluginsInput{Type: api.PluginTypeSecrets})
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range list.Details {
		if p.Name == vaulttest.CatalogName && !p.Builtin && p.Version != "" {
			return p.Version
		}
	}
	tb.Fatal("the plugin reports no version; set WETIX_PLUGIN_VERSION")
	return ""
}

// seenSet counts the distinct access tokens and lease IDs readers were
// handed. It keeps hashes, not the tokens.
type seenSet struct {
	unleased bool // answers must carry no lease (static-token)
	seed     maphash.Seed
	mu       sync.Mutex
	tokens   map[uint64]struct{}
	leases   map[uint64]struct{}
}

func newSeenSet(unleased bool) *seenSet {
	return &seenSet{unleased: unleased, seed: maphash.MakeSeed(), tokens: map[uint64]struct{}{}, leases: map[uint64]struct{}{}}
}

func (s *seenSet) inspect(body []byte) error {
	var v struct {
		LeaseID string `json:"lease_id"`
		Data    struct {
			AccessToken string `json:"access_token"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return fmt.Errorf("an answer that is not Vault's JSON: %v", err)
	}
	if v.Data.AccessToken == "" {
		return errors.New("an answer without an access token")
	}
	if (v.LeaseID == "") != s.unleased {
		return fmt.Errorf("an answer with a lease: %v; want a lease on token and none on static-token", v.LeaseID != "")
	}
	tok, lease := maphash.String(s.seed, v.Data.AccessToken), maphash.String(s.seed, v.LeaseID)
	s.mu.Lock()
	s.tokens[tok] = struct{}{}
	if v.LeaseID != "" {
		s.leases[lease] = struct{}{}
	}
	s.mu.Unlock()
	return nil
}

func (s *seenSet) counts() (tokens, leases int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tokens), len(s.leases)
}

// oneOf is an environment setting's value, the first choice when unset; any
// other value stops the run with what the setting takes.
func oneOf(b *testing.B, name, value, want string, choices ...string) string {
	if value == "" {
		return choices[0]
	}
	for _, c := range choices {
		if value == c {
			return value
		}
	}
	b.Fatalf("%s=%q: want %s", name, value, want)
	return ""
}
