package wetix

import (
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

func TestCallsToWeTixNameThePluginAndItsVersion(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	h := newHarness(t, func(o *wetixtest.Options) {
		o.OnRequest = func(ri wetixtest.RequestInfo) {
			mu.Lock()
			defer mu.Unlock()
			seen = append(seen, ri.Path+" "+ri.UserAgent)
		}
	})
	h.configure(nil)
	h.readToken()
	if resp, err := h.request(logical.UpdateOperation, "rotate", nil); err != nil || resp.IsError() {
		t.Fatalf("rotate: resp=%v err=%v", resp, err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := "vault-plugin-secrets-wetix/" + Version
	grants := map[string]bool{}
	for _, s := range seen {
		path, ua, _ := strings.Cut(s, " ")
		grants[path] = true
		if ua != want {
			t.Errorf("%s sent User-Agent %q, want %q", path, ua, want)
		}
	}
	if !grants["/auth/token"] || !grants["/auth/refresh"] {
		t.Fatalf("calls %q: want both grants", seen)
	}
}
