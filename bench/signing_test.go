package bench

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// signGoalRatio: a sign may take at most this many times a transit sign of
// the same plaintext (issue 10).
const signGoalRatio = 1.2

// signOrder is a typical createMovieOrder input (about 500 bytes).
const signOrder = `{"sessionKey":"EhFNb3ZpZU9yZGVyU2Vzc2lvbiIbMXpodkxWbUdBMExZbGFuUWUxMUNpbWN6Mklk","referenceId":"123","customer":{"externalId":null,"email":"harithmohamd67@gmail.com","countryCode":"60","phoneNo":"167385346"},"tickets":[{"key":"U_-HAwEBCUdvYlRpY2tldAH_iAABBQECSUQBDAABBE5hbWUBDAABCEFyZWFDb2RlAQwAAQZBbW91bnQBBgABD1NlYXRzQWxsb2NhdGlvbgEGAAAAGv-IAQVBZHVsdAEFQURVTFQBATEB_g-gAQEA","quantity":1}],"concessions":null,"bundles":null,"promoCode":null}`

// BenchmarkVaultSign compares wetix/sign with transit/sign on one Vault dev
// server, side by side: both sign the same plaintext with an RSA-2048 key,
// PKCS#1 v1.5, SHA-256; transit is handed the plaintext ready-made, wetix
// builds it (canonical JSON, base64, client ID). Run once, like
// BenchmarkVault:
//
//	go test -v -count=1 -timeout 20m -run '^$' -bench '^BenchmarkVaultSign$' -benchtime 1x ./bench
//
// It uses the same WETIX_BENCH_* settings and prints a markdown table; it
// fails only on an error answer or a signature that does not verify.
func BenchmarkVaultSign(b *testing.B) {
	set := loadSettings(b)
	dir := b.TempDir()
	plugin := pluginBinary(b, dir)
	emu := wetixtest.New(wetixtest.Options{ClientID: benchClientID, ClientSecret: benchClientSecret})
	b.Cleanup(emu.Close)
	srv := vaulttest.Start(b, vaulttest.Options{PluginDir: dir, LogLevel: "warn"})
	srv.RegisterPlugin(plugin)
	r := &rig{t: b, set: set, srv: srv, plugin: plugin}
	r.learnVersion()
	r.mountPlugin("wetix")
	vaulttest.Configure(b, srv.Client, "wetix", emu, nil)
	key := r.write("wetix/signing-key", nil)
	if err := srv.Client.Sys().Mount("transit", &api.MountInput{Type: "transit"}); err != nil {
		b.Fatal(err)
	}
	r.write("transit/keys/bench", map[string]interface{}{"type": "rsa-2048"})

	const ts = 1634616725
	canonical, err := signature.Canonicalize([]byte(signOrder))
	if err != nil {
		b.Fatal(err)
	}
	plaintext := signature.Plaintext(benchClientID, canonical, signature.CreateMovieOrder, ts)
	wetixBody, _ := json.Marshal(map[string]interface{}{"mutation": "createMovieOrder", "input": signOrder, "timestamp": ts})
	transitBody, _ := json.Marshal(map[string]interface{}{"input": base64.StdEncoding.EncodeToString(plaintext), "signature_algorithm": "pkcs1v15"})
	targets := []target{
		{Name: "wetix-sign", Method: "POST", Path: "wetix/sign", Body: wetixBody, Note: "canonicalize + plaintext + RSA-2048 PKCS#1 v1.5 SHA-256"},
		{Name: "transit-sign", Method: "POST", Path: "transit/sign/bench/sha2-256", Body: transitBody, Note: "the same plaintext, RSA-2048 PKCS#1 v1.5 SHA-256"},
	}

	// Both answers are real signatures: wetix's verifies with its public key.
	load := newLoadClient(srv.Addr, srv.Token, 128)
	b.Cleanup(load.close)
	status, body, err := load.do(targets[0])
	if err != nil || status != 200 {
		b.Fatalf("wetix/sign: %d %v %s", status, err, body)
	}
	var got vaultResponse
	json.Unmarshal(body, &got)
	if err := signature.Verify(publicKeyFromPEM(b, key.Data["public_key"].(string)), plaintext, got.Data["hash"].(string)); err != nil {
		b.Fatalf("wetix/sign answer does not verify: %v", err)
	}
	if status, body, err := load.do(targets[1]); err != nil || status != 200 || !strings.Contains(string(body), "vault:v1:") {
		b.Fatalf("transit/sign: %d %v %s", status, err, body)
	}

	cells := map[string]map[int][]cell{}
	for _, tg := range targets {
		cells[tg.Name] = map[int][]cell{}
	}
	sliceDur := set.duration / time.Duration(set.slices)
	for round := 0; round < set.rounds; round++ {
		for _, conc := range concurrencies {
			got := map[string][]slice{}
			for sl := 0; sl < set.slices; sl++ {
				for i := range targets {
					tg := targets[(i+sl+round)%len(targets)]
					got[tg.Name] = append(got[tg.Name], load.run(tg, conc, set.warmup, sliceDur, nil, nil))
				}
			}
			for _, tg := range targets {
				c := merge(got[tg.Name])
				if c.Errors > 0 {
					b.Fatalf("%s at %d clients: %d errors, first: %s", tg.Name, conc, c.Errors, c.FirstError)
				}
				cells[tg.Name][conc] = append(cells[tg.Name][conc], c)
				b.Logf("round %d, %2d clients, %-12s %6.0f req/s  p50 %-9s p99 %s", round+1, conc, tg.Name, c.PerSec, ms(c.P50), ms(c.P99))
			}
		}
	}

	var w strings.Builder
	fmt.Fprintf(&w, "## Sign vs transit\n\nOne Vault dev server, %d rounds of %v per cell in %d slices, engines alternating; medians of the rounds.\n\n", set.rounds, set.duration, set.slices)
	fmt.Fprintf(&w, "| clients | wetix/sign req/s | transit/sign req/s | time per request wetix/transit | p50 wetix | p50 transit | p50 ratio | goal ≤ %.1f |\n|---:|---:|---:|---:|---:|---:|---:|---|\n", signGoalRatio)
	for _, conc := range concurrencies {
		ws, tsr := medianPerSec(cells["wetix-sign"][conc]), medianPerSec(cells["transit-sign"][conc])
		wp, tp := medianP50(cells["wetix-sign"][conc]), medianP50(cells["transit-sign"][conc])
		ratio := tsr / ws
		met := "met"
		if ratio > signGoalRatio || float64(wp)/float64(tp) > signGoalRatio {
			met = "**not met**"
		}
		fmt.Fprintf(&w, "| %d | %.0f | %.0f | %.2f | %s | %s | %.2f | %s |\n", conc, ws, tsr, ratio, ms(wp), ms(tp), float64(wp)/float64(tp), met)
	}
	fmt.Println(w.String())
	if out := os.Getenv("WETIX_SIGN_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(w.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

func medianPerSec(cs []cell) float64 {
	v := make([]float64, len(cs))
	for i, c := range cs {
		v[i] = c.PerSec
	}
	return median(v)
}

func medianP50(cs []cell) time.Duration {
	v := make([]time.Duration, len(cs))
	for i, c := range cs {
		v[i] = c.P50
	}
	return medianDuration(v)
}

func publicKeyFromPEM(tb testing.TB, text string) *rsa.PublicKey {
	tb.Helper()
	block, _ := pem.Decode([]byte(text))
	if block == nil {
		tb.Fatal("public_key is not PEM")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		tb.Fatal(err)
	}
	return k.(*rsa.PublicKey)
}
