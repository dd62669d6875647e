package acceptance

import (
	"net"
	"strings"
	"testing"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/internal/vaulttest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// TestPrivateCAAndEgressProxyThroughRegistrationEnv is docs/network.md run
// through a real Vault: WeTix (the emulator) serves https with a certificate
// from a CA no system store knows, and sits behind an HTTP CONNECT proxy
// that alone can resolve its name. The same binary is registered four times
// under different catalog names, so each mount runs its own plugin process
// with its own -env: nothing (the read fails naming the fix), SSL_CERT_FILE
// (served), HTTPS_PROXY and SSL_CERT_FILE (served through the proxy), and
// HTTPS_PROXY alone (the proxy does not make the certificate trusted).
// Vault's own environment names another CA and a dead proxy: the plugin gets
// the working ones only from the catalog, which shows Vault (1.16+) layers
// the registration's -env over its own environment.
func TestPrivateCAAndEgressProxyThroughRegistrationEnv(t *testing.T) {
	vaulttest.RequireLong(t)
	ca := newPrivateCA(t)
	const name = "oauth.wetix.test" // resolves nowhere but in the proxy
	emu := newEmulator(t, wetixtest.Options{TLS: ca.serverTLS(t, name)})
	direct := emu.URL()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(direct, "https://"))
	if err != nil || !strings.HasPrefix(direct, "https://") {
		t.Fatalf("emulator URL %q is not https", direct)
	}
	proxied := "https://" + net.JoinHostPort(name, port)
	proxy := newConnectProxy(t, map[string]string{net.JoinHostPort(name, port): net.JoinHostPort("127.0.0.1", port)})

	plugins := t.TempDir()
	p := vaulttest.BuildPlugin(t, plugins, vaulttest.PluginVersion)
	decoy := newPrivateCA(t)
	s := vaulttest.Start(t, vaulttest.Options{PluginDir: plugins, Env: []string{
		"SSL_CERT_FILE=" + decoy.PEMFile, "HTTPS_PROXY=http://127.0.0.1:1",
	}})
	// The operator's commands, as docs/network.md gives them.
	mount := func(catalog, baseURL string, env ...string) {
		t.Helper()
		args := []string{"plugin", "register", "-sha256=" + p.SHA256, "-version=" + p.Version, "-command=" + p.File}
		for _, e := range env {
			args = append(args, "-env="+e)
		}
		s.MustCLI(append(args, "secret", catalog)...)
		s.MustCLI("secrets", "enable", "-path="+catalog, "-plugin-version="+p.Version, catalog)
		vaulttest.Configure(t, s.Client, catalog, emu, map[string]interface{}{"base_url": baseURL})
	}
	caEnv := "SSL_CERT_FILE=" + ca.PEMFile
	proxyEnv := "HTTPS_PROXY=" + proxy.URL

	untrusted := func(mount, host string) {
		t.Helper()
		_, err := vaulttest.ReadToken(s.Client, mount).Token()
		msg := vaulttest.ErrText(err)
		for _, want := range []string{"certificate of " + host + " was not trusted", "vault plugin register -env SSL_CERT_FILE=", "system CA store"} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: the read's error %q does not say %q", mount, msg, want)
			}
		}
		status, err := s.Client.Logical().Read(mount + "/status")
		if err != nil {
			t.Fatal(err)
		}
		if advice, _ := status.Data["advice"].(string); !strings.Contains(advice, "SSL_CERT_FILE") {
			t.Errorf("%s: status advice %q does not name SSL_CERT_FILE", mount, advice)
		}
	}
	served := func(mount string) {
		t.Helper()
		tok, err := vaulttest.ReadToken(s.Client, mount).Token()
		if err != nil {
			t.Fatalf("%s: %v", mount, err)
		}
		if !emu.IsAccessTokenValid(tok) {
			t.Fatalf("%s served a token the emulator did not issue", mount)
		}
	}

	mount("wetix", direct)
	untrusted("wetix", strings.TrimPrefix(direct, "https://"))
	if n := emu.TotalCalls(); n != 0 {
		t.Fatalf("%d requests reached WeTix past an untrusted certificate", n)
	}

	mount("wetix-ca", direct, caEnv)
	served("wetix-ca")
	if got := proxy.Tunnels(); len(got) != 0 {
		t.Fatalf("without HTTPS_PROXY the plugin used the proxy: %v", got)
	}

	mount("wetix-proxy", proxied, proxyEnv, caEnv)
	served("wetix-proxy")
	if got := proxy.Tunnels(); len(got) == 0 || got[0] != net.JoinHostPort(name, port) {
		t.Fatalf("the proxy tunnelled %v, want %s:%s", got, name, port)
	}

	mount("wetix-proxy-noca", proxied, proxyEnv)
	before := len(proxy.Tunnels())
	untrusted("wetix-proxy-noca", net.JoinHostPort(name, port))
	if len(proxy.Tunnels()) == before {
		t.Error("the HTTPS_PROXY-only mount did not go through the proxy")
	}
}
