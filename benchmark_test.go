package wetix

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"
	sdkplugin "github.com/hashicorp/vault/sdk/plugin"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// In-process benchmarks of the hot path: a cached token read through
// framework.Backend.HandleRequest with in-memory storage, no Vault, no gRPC.
// `make bench` (scripts/bench.sh) runs them with -benchmem and reports
// medians; the real-server figures come from bench/.
//
//	go test -run '^$' -bench TokenRead -benchmem .

// countingStorage counts storage calls, so the benchmarks can show that a
// cached read touches storage zero times (reported as storage-ops/op).
type countingStorage struct {
	logical.Storage
	ops atomic.Int64
}

func (s *countingStorage) Get(ctx context.Context, k string) (*logical.StorageEntry, error) {
	s.ops.Add(1)
	return s.Storage.Get(ctx, k)
}

func (s *countingStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	s.ops.Add(1)
	return s.Storage.Put(ctx, e)
}

func (s *countingStorage) List(ctx context.Context, p string) ([]string, error) {
	s.ops.Add(1)
	return s.Storage.List(ctx, p)
}

func (s *countingStorage) Delete(ctx context.Context, k string) error {
	s.ops.Add(1)
	return s.Storage.Delete(ctx, k)
}

type benchBackend struct {
	b       *backend
	storage *countingStorage
	wetix   *wetixtest.Server
}

// newBenchBackend builds a configured mount whose token is already cached:
// the emulator's default 60-day access tokens never become due during a
// benchmark, and the real clock is used, as in production.
func newBenchBackend(tb testing.TB) *benchBackend {
	tb.Helper()
	srv := wetixtest.New(wetixtest.Options{ClientID: "bench-client", ClientSecret: "bench-secret"})
	tb.Cleanup(srv.Close)

	b := newBackend(hclog.NewNullLogger(), time.Now)
	conf := logical.TestBackendConfig()
	conf.Logger = hclog.NewNullLogger()
	if err := b.Setup(context.Background(), conf); err != nil {
		tb.Fatal(err)
	}
	bb := &benchBackend{b: b, storage: &countingStorage{Storage: &logical.InmemStorage{}}, wetix: srv}
	resp, err := b.HandleRequest(context.Background(), &logical.Request{
		Operation: logical.CreateOperation,
		Path:      "config",
		Storage:   bb.storage,
		Data:      srv.MountConfig(nil),
	})
	if err != nil || resp.IsError() {
		tb.Fatalf("config write: %v %v", resp, err)
	}
	// The first read fetches the token; every later one is a cache hit.
	bb.read(tb, bb.request())
	if n := srv.TotalCalls(); n != 1 {
		tb.Fatalf("setup made %d upstream calls, want 1", n)
	}
	return bb
}

// request is what Vault hands the plugin for GET /v1/<mount>/token. Vault
// builds a fresh one per call; the benchmarks reuse one per goroutine so the
// figures show the backend's own cost.
func (bb *benchBackend) request() *logical.Request {
	return &logical.Request{Operation: logical.ReadOperation, Path: "token", Storage: bb.storage}
}

func (bb *benchBackend) read(tb testing.TB, req *logical.Request) *logical.Response {
	resp, err := bb.b.HandleRequest(context.Background(), req)
	if err != nil || resp == nil || resp.IsError() || resp.Secret == nil {
		tb.Fatalf("token read: %v %v", resp, err)
	}
	return resp
}

// report adds the storage calls and upstream calls made per read during the
// timed loop; both must be 0 for a cached read.
func (bb *benchBackend) report(b *testing.B, storageBefore int64, upstreamBefore int) {
	b.ReportMetric(float64(bb.storage.ops.Load()-storageBefore)/float64(b.N), "storage-ops/op")
	upstream := bb.wetix.TotalCalls() - upstreamBefore
	b.ReportMetric(float64(upstream)/float64(b.N), "upstream/op")
}

func (bb *benchBackend) counters() (int64, int) {
	return bb.storage.ops.Load(), bb.wetix.TotalCalls()
}

// BenchmarkTokenRead is one client reading the cached token in a loop.
func BenchmarkTokenRead(b *testing.B) {
	bb := newBenchBackend(b)
	req := bb.request()
	storageBefore, upstreamBefore := bb.counters()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		bb.read(b, req)
	}
	b.StopTimer()
	bb.report(b, storageBefore, upstreamBefore)
}

// BenchmarkStaticTokenRead is BenchmarkTokenRead on the unleased path: the
// same cached token, answered as plain data with its ttl fields.
func BenchmarkStaticTokenRead(b *testing.B) {
	bb := newBenchBackend(b)
	req := &logical.Request{Operation: logical.ReadOperation, Path: staticTokenPath, Storage: bb.storage}
	storageBefore, upstreamBefore := bb.counters()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, err := bb.b.HandleRequest(context.Background(), req)
		if err != nil || resp == nil || resp.IsError() || resp.Secret != nil || resp.Data["access_token"] == "" {
			b.Fatalf("static-token read: %v %v", resp, err)
		}
	}
	b.StopTimer()
	bb.report(b, storageBefore, upstreamBefore)
}

// BenchmarkTokenReadParallel is GOMAXPROCS clients reading the cached token
// at once: it shows whether the hot path contends on a lock.
func BenchmarkTokenReadParallel(b *testing.B) {
	bb := newBenchBackend(b)
	storageBefore, upstreamBefore := bb.counters()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := bb.request()
		for pb.Next() {
			bb.read(b, req)
		}
	})
	b.StopTimer()
	bb.report(b, storageBefore, upstreamBefore)
}

// countingSystemView counts ReplicationState calls: over gRPC each one is a
// round trip from the plugin back to Vault.
type countingSystemView struct {
	logical.StaticSystemView
	replicationState atomic.Int64
}

func (s *countingSystemView) ReplicationState() consts.ReplicationState {
	s.replicationState.Add(1)
	return s.StaticSystemView.ReplicationState()
}

// BenchmarkTokenReadGRPC is the cached read through Vault's plugin protocol,
// both ends in this process: the SDK's gRPC client (Vault's side) calls the
// SDK's gRPC server (the plugin's side) over a Unix socket, and the plugin
// reaches storage and the system view back through the go-plugin broker. It
// separates the protocol's cost from the backend's (BenchmarkTokenRead), and
// counts the replication-state calls back to Vault that the cache
// (system_view.go) saves.
func BenchmarkTokenReadGRPC(b *testing.B) {
	srv := wetixtest.New(wetixtest.Options{ClientID: "bench-client", ClientSecret: "bench-secret"})
	b.Cleanup(srv.Close)
	factory := func(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
		be := newBackend(hclog.NewNullLogger(), time.Now)
		if err := be.Setup(ctx, conf); err != nil {
			return nil, err
		}
		return be, nil
	}
	// go-plugin's test connection logs at debug level to
	// hclog.DefaultOutput, which would break the benchmark lines.
	defaultOutput := hclog.DefaultOutput
	hclog.DefaultOutput = io.Discard
	client, _ := goplugin.TestPluginGRPCConn(b, false, map[string]goplugin.Plugin{
		sdkplugin.BackendPluginName: &sdkplugin.GRPCBackendPlugin{Factory: factory, Logger: hclog.NewNullLogger()},
	})
	hclog.DefaultOutput = defaultOutput
	b.Cleanup(func() { client.Close() })
	raw, err := client.Dispense(sdkplugin.BackendPluginName)
	if err != nil {
		b.Fatal(err)
	}
	be := raw.(logical.Backend)
	sys := &countingSystemView{StaticSystemView: logical.StaticSystemView{DefaultLeaseTTLVal: time.Hour, MaxLeaseTTLVal: 24 * time.Hour}}
	storage := &countingStorage{Storage: &logical.InmemStorage{}}
	if err := be.Setup(context.Background(), &logical.BackendConfig{Logger: hclog.NewNullLogger(), System: sys, StorageView: storage}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	resp, err := be.HandleRequest(ctx, &logical.Request{Operation: logical.CreateOperation, Path: "config", Data: srv.MountConfig(nil)})
	if err != nil || resp.IsError() {
		b.Fatalf("config write: %v %v", resp, err)
	}
	read := func() {
		resp, err := be.HandleRequest(ctx, &logical.Request{Operation: logical.ReadOperation, Path: "token"})
		if err != nil || resp == nil || resp.IsError() || resp.Secret == nil {
			b.Fatalf("token read: %v %v", resp, err)
		}
	}
	read()
	storageBefore, sysBefore := storage.ops.Load(), sys.replicationState.Load()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		read()
	}
	b.StopTimer()
	b.ReportMetric(float64(storage.ops.Load()-storageBefore)/float64(b.N), "storage-ops/op")
	b.ReportMetric(float64(sys.replicationState.Load()-sysBefore)/float64(b.N), "callbacks-to-vault/op")
}
