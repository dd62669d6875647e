package wetix

import (
	"fmt"
	"net/http"
	"time"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// upKind is one way WeTix can answer a grant: every fault the emulator can
// produce, plus the normal answer.
type upKind int

const (
	upOK upKind = iota
	upDelayShort
	upOmitRT
	upOmitExp
	up500
	up503
	up502HTML
	up429
	upDrop
	upDropProc
	upTrunc
	upTruncProc
	upDelayLong
	upDelayLongProc
	upHTML200
	upInvalidGrant
	upInvalidClient
	numUpKinds
)

var upNames = [...]string{"ok", "slow", "no-refresh-token", "no-expires-in", "500", "503", "502-html", "429", "drop", "drop-after-processing",
	"truncate", "truncate-after-processing", "timeout", "timeout-after-processing", "html-200", "invalid_grant", "invalid_client"}

func (k upKind) String() string { return upNames[k] }

const (
	// scheduleClientTimeout is each WeTix call's timeout in the schedules:
	// long enough for a loopback answer on a loaded 2-core machine under
	// -race, short enough that a timeout fault costs little.
	scheduleClientTimeout = 250 * time.Millisecond
	// The emulator's sleep ends when the client hangs up, so a long delay
	// costs nothing; it must only outlast a timer starved by a busy machine.
	longDelay = scheduleClientTimeout + 2*time.Second
)

// fault is the emulator fault for k; ra is the Retry-After of a 429.
func (k upKind) fault(ra int) (wetixtest.Fault, bool) {
	switch k {
	case upOK:
		return wetixtest.Fault{}, false
	case upDelayShort:
		return wetixtest.Fault{Delay: 2 * time.Millisecond}, true
	case upOmitRT:
		return wetixtest.Fault{OmitRefreshToken: true}, true
	case upOmitExp:
		return wetixtest.Fault{OmitExpiresIn: true}, true
	case up500:
		return wetixtest.FaultStatus(http.StatusInternalServerError, ""), true
	case up503:
		return wetixtest.FaultStatus(http.StatusServiceUnavailable, ""), true
	case up502HTML:
		return wetixtest.FaultHTML(http.StatusBadGateway), true
	case up429:
		return wetixtest.FaultRetryAfter(ra), true
	case upDrop:
		return wetixtest.Fault{Drop: true}, true
	case upDropProc:
		return wetixtest.Fault{Drop: true, Process: true}, true
	case upTrunc:
		return wetixtest.Fault{Truncate: true}, true
	case upTruncProc:
		return wetixtest.Fault{Truncate: true, Process: true}, true
	case upDelayLong:
		return wetixtest.Fault{Delay: longDelay}, true
	case upDelayLongProc:
		return wetixtest.Fault{Delay: longDelay, Process: true}, true
	case upHTML200:
		return wetixtest.Fault{Body: "<html><title>Maintenance</title></html>", ContentType: "text/html"}, true
	case upInvalidGrant:
		return wetixtest.FaultInvalidGrant(), true
	case upInvalidClient:
		return wetixtest.FaultInvalidClient(), true
	}
	panic("unknown upKind")
}

// succeeds: the grant goes through when credentials and token are good.
func (k upKind) succeeds() bool {
	return k == upOK || k == upDelayShort || k == upOmitRT || k == upOmitExp
}

// upstream is WeTix's behaviour until the next change: a persistent kind per
// grant, after the first OneShotN calls (either grant) got OneShot.
type upstream struct {
	Refresh, CC upKind
	RA          int // Retry-After seconds of a 429
	OneShot     upKind
	OneShotN    int
}

func (u upstream) String() string {
	s := fmt.Sprintf("refresh=%s cc=%s", u.Refresh, u.CC)
	if u.OneShotN > 0 {
		s = fmt.Sprintf("first %d calls %s, then %s", u.OneShotN, u.OneShot, s)
	}
	if u.Refresh == up429 || u.CC == up429 || (u.OneShotN > 0 && u.OneShot == up429) {
		s += fmt.Sprintf(" (Retry-After %ds)", u.RA)
	}
	return s
}

// install replaces the emulator's fault queue with u, oneShotLeft calls of
// the one-shot fault first.
func (u upstream) install(srv *wetixtest.Server, oneShotLeft int) {
	srv.ClearFaults()
	if oneShotLeft > 0 {
		if f, ok := u.OneShot.fault(u.RA); ok {
			srv.Fault(f.Limit(oneShotLeft))
		}
	}
	if f, ok := u.Refresh.fault(u.RA); ok {
		srv.Fault(f.For(wetixtest.GrantRefresh))
	}
	if f, ok := u.CC.fault(u.RA); ok {
		srv.Fault(f.For(wetixtest.GrantClientCredentials))
	}
}
