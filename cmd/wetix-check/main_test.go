package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/signature/signaturetest"
	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// env is the environment the command reads, as a map.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// emulatorWithKey is a WeTix holding the test key's public half; the
// returned env points the command at it with the secret and key in files,
// the way the docs tell an integrator to run it.
func emulatorWithKey(t *testing.T, opts wetixtest.Options) (*wetixtest.Server, env, []string) {
	t.Helper()
	srv := wetixtest.New(opts)
	t.Cleanup(srv.Close)
	pemText, key := signaturetest.Key(t)
	if err := srv.SetSigningPublicKey(signaturetest.PublicPEM(t, key)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	secretFile, keyFile := filepath.Join(dir, "secret"), filepath.Join(dir, "key.pem")
	os.WriteFile(secretFile, []byte("test-client-secret\n"), 0o600)
	os.WriteFile(keyFile, []byte(pemText), 0o600)
	return srv, env{"WETIX_CLIENT_ID": "test-client-id", "WETIX_CLIENT_SECRET_FILE": secretFile, "WETIX_SIGNING_KEY_FILE": keyFile},
		[]string{"-oauth-url", srv.URL(), "-graphql-url", srv.URL() + "/graphql"}
}

func TestExitsZeroAndWritesTheReportWhenWeTixIsAsAssumed(t *testing.T) {
	_, e, args := emulatorWithKey(t, wetixtest.Options{})
	out := filepath.Join(t.TempDir(), "report.md")
	var stdout, stderr bytes.Buffer
	if code := run(append(args, "-out", out), e.get, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d, want 0; stderr %s; report:\n%s", code, stderr.String(), stdout.String())
	}
	file, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(file, stdout.Bytes()) {
		t.Fatalf("-out file (%v) differs from what was printed", err)
	}
	if info, _ := os.Stat(out); info.Mode().Perm() != 0o600 {
		t.Errorf("report file mode %v, want 0600", info.Mode().Perm())
	}
	if strings.Contains(stdout.String(), "test-client-secret") {
		t.Error("the report carries the client secret")
	}
}

func TestExitsOneWhenWeTixDiffers(t *testing.T) {
	srv, e, args := emulatorWithKey(t, wetixtest.Options{})
	srv.SetCanonicalRule(wetixtest.RuleLiteral)
	var stdout, stderr bytes.Buffer
	if code := run(args, e.get, &stdout, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1 for a WeTix on the literal rule; report:\n%s", code, stdout.String())
	}
	if !strings.Contains(stdout.String(), "canonical_json=literal") {
		t.Errorf("report does not give the fix:\n%s", stdout.String())
	}
}

func TestBadUsageNamesWhatIsWrong(t *testing.T) {
	_, good, args := emulatorWithKey(t, wetixtest.Options{})
	badKey := filepath.Join(t.TempDir(), "bad.pem")
	os.WriteFile(badKey, []byte("not a key"), 0o600)
	cases := []struct {
		name string
		env  env
		args []string
		want string
	}{
		{"no client id", env{"WETIX_CLIENT_SECRET": "x"}, args, "WETIX_CLIENT_ID"},
		{"no secret", env{"WETIX_CLIENT_ID": "x"}, args, "WETIX_CLIENT_SECRET"},
		{"both secrets", env{"WETIX_CLIENT_ID": "x", "WETIX_CLIENT_SECRET": "x", "WETIX_CLIENT_SECRET_FILE": good["WETIX_CLIENT_SECRET_FILE"]}, args, "not both"},
		{"key not PEM", env{"WETIX_CLIENT_ID": "x", "WETIX_CLIENT_SECRET": "x", "WETIX_SIGNING_KEY_FILE": badKey}, args, "not PEM"},
		{"production", env{"WETIX_CLIENT_ID": "x", "WETIX_CLIENT_SECRET": "x"}, []string{"-oauth-url", "https://oauth.wetix.my"}, "-allow-production"},
		{"secret as an argument", good, append(args, "s3cret"), "environment"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(c.args, c.env.get, &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want 2 and a message containing %q", code, stderr.String(), c.want)
			}
			if strings.Contains(stderr.String(), "not a key") || strings.Contains(stderr.String(), "s3cret") {
				t.Error("an error quotes what it was given")
			}
		})
	}
}
