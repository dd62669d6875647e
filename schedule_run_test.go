package wetix

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/wetix-oss/vault-plugin-secrets-wetix/wetixtest"
)

// run plays the schedule, checking after every step; it returns the first
// violation, wrapped with the step it happened at.
func (w *world) run() error {
	for i, st := range w.sch.Steps {
		if err := w.do(st); err != nil {
			return &stepError{index: i, err: err, logs: tail(w.logs.String(), 30) + "\n  WeTix calls (last):\n" + tail(w.upLog.String(), 12)}
		}
		w.checked++
	}
	return nil
}

type stepError struct {
	index int
	err   error
	logs  string // the plugin's last log lines, which never hold secrets
}

func (e *stepError) Error() string {
	return fmt.Sprintf("step %d: %v\nplugin log (last lines of the current backend):\n%s", e.index, e.err, e.logs)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
func (e *stepError) Unwrap() error { return e.err }

func (w *world) successes() int {
	return w.wetix.Successes(wetixtest.GrantClientCredentials) + w.wetix.Successes(wetixtest.GrantRefresh)
}

func (w *world) do(st step) error {
	before := w.view()
	now := w.clock.Now()
	issued := w.successes()
	w.storage.set(st.Storage, false)
	err := w.exec(st, before)
	w.storage.set(nil, false)
	w.settle()
	if err != nil {
		return err
	}
	after := w.view()

	if credentialsChanged(before, after) {
		// New credentials or a delete reset the plugin's memory; a write of
		// new credentials also starts a refresh right away (README, "Config
		// changes"), whose failure the model did not see.
		w.m.forget()
		if after.cfg != nil {
			w.blurAfter = true
		}
	}
	// After the reset: a burst's failed round may come after its config write.
	if st.Storage != nil || w.blurAfter {
		w.blurAfter = false
		w.m.blur(now)
		// A pair WeTix issued that storage lacks may be held in memory.
		if w.successes() != issued && after.credential().access != w.wetix.LastIssued().AccessToken {
			w.m.pending = true
		}
	} else if w.m.pending && after.cfg != nil && after.credential().access == w.wetix.LastIssued().AccessToken {
		w.m.pending = false
	}
	w.m.up.install(w.wetix, w.m.oneShotLeft)

	if err := w.checkStorage(before, after, st); err != nil {
		return err
	}
	if err := w.checkReported(st, after); err != nil {
		return err
	}
	if w.m.deleted {
		if after.cfg != nil {
			w.m.deleted = false
		} else if err := w.checkDeleted(); err != nil {
			return err
		}
	}
	return nil
}

func (w *world) exec(st step, v storedView) error {
	ctx := context.Background()
	now := w.clock.Now()
	switch st.Kind {
	case stRead:
		return w.read(v, st.Storage != nil)
	case stRotate:
		return w.rotate(v, st.Storage != nil)
	case stTick:
		if w.m.fuzzy(now) || st.Storage != nil || v.secretChangePending() {
			w.m.blur(now)
		} else {
			w.m.tick(v, w.env(v), now)
		}
		_ = w.tick() // a failure shows in status and is retried next tick
	case stStatus:
		resp, err := w.request(logical.ReadOperation, "status", nil)
		if err != nil {
			return broke(5, "status read failed: %v", err)
		}
		if resp.Data["configured"] != (v.cfg != nil) {
			return broke(5, "status configured=%v but the stored config exists=%v", resp.Data["configured"], v.cfg != nil)
		}
		return w.checkNoSecrets(resp, err, false)
	case stConfigWrite:
		resp, err := w.writeConfig(st.Cfg)
		if st.Storage == nil && (err != nil || resp.IsError()) {
			return broke(5, "config write failed with healthy storage: %v %v", err, resp.Error())
		}
		if err == nil && !resp.IsError() {
			w.m.deleted = false
		}
		if err := w.checkNoSecrets(resp, err, false); err != nil {
			return err
		}
	case stConfigDelete:
		resp, err := w.request(logical.DeleteOperation, "config", nil)
		switch {
		case err == nil && !resp.IsError():
			w.m.deleted = true
		case st.Storage == nil:
			return broke(5, "config delete failed with healthy storage: %v", err)
		default:
			// Half done: memory may still hold what storage lost.
			w.m.pending = true
		}
	case stInvalidate:
		w.b.InvalidateKey(ctx, st.Key)
	case stCrash:
		w.settle()
		w.startBackend()
		w.m.forget()
	case stReload:
		w.b.Cleanup(ctx)
		w.startBackend()
		w.m.forget()
	case stAdvance:
		w.clock.Advance(st.Advance)
	case stUpstream:
		w.m.up, w.m.oneShotLeft = st.Up, st.Up.OneShotN
	case stWeTixSecret:
		w.wetix.SetClientSecret(w.secrets[st.Secret])
		w.m.wetixSecret = st.Secret
	case stBurst:
		return w.burst(st, v)
	case stHeal:
		return w.heal()
	case stRenew:
		return w.renew(st, v)
	}
	return nil
}

// read is one token read checked against the oracle (invariants 4 and 5).
func (w *world) read(v storedView, storageFault bool) error {
	now := w.clock.Now()
	var want []verdict
	switch {
	case v.cfg == nil:
		want = []verdict{oNotConf}
	case w.m.fuzzy(now) || v.secretChangePending():
		// A new client_secret alone is tried in the background, and the
		// previous tokens are served with a warning meanwhile (README,
		// "Changing the client secret without an outage"); until it settles
		// any answer but "not configured" is one the README allows.
		want = anyAnswer()
		w.m.blur(now)
	default:
		want = w.m.expectRead(v, w.env(v), now)
	}
	if storageFault {
		// A storage failure fails the read, or serves a servable token
		// with a warning.
		want = append(want, oStorage, oStale)
	}
	resp, err := w.request(logical.ReadOperation, "token", nil)
	got, text := classify(resp, err)
	if !accepts(want, got) {
		return broke(5, "read gave %s (%s), the README's rules give %v; state: %s", got, text, want, w.describe(v, now))
	}
	if err := w.checkNoSecrets(resp, err, true); err != nil {
		return err
	}
	if got == oToken || got == oStale {
		if err := w.checkToken(resp, now, v.ttl()); err != nil {
			return err
		}
		if !storageFault {
			if err := w.renewAtOnce(resp, now); err != nil {
				return err
			}
		}
		w.hold(resp, now)
	}
	return nil
}

func (w *world) rotate(v storedView, storageFault bool) error {
	now := w.clock.Now()
	var want []verdict
	switch {
	case v.cfg == nil:
		want = []verdict{oNotConf}
	case w.m.fuzzy(now) || v.secretChangePending():
		want = append([]verdict{oRotated}, allFailures...)
		w.m.blur(now)
	default:
		want = w.m.expectRotate(v, w.env(v), now)
	}
	if storageFault {
		want = append(want, oStorage)
	}
	resp, err := w.request(logical.UpdateOperation, "rotate", nil)
	got, text := classify(resp, err)
	if !accepts(want, got) {
		return broke(5, "rotate gave %s (%s), the README's rules give %v; state: %s", got, text, want, w.describe(v, now))
	}
	return w.checkNoSecrets(resp, err, false)
}

// describe is the state a read was judged on, for the violation message.
func (w *world) describe(v storedView, now time.Time) string {
	if v.cfg == nil {
		return "no config"
	}
	c := v.credential()
	s := fmt.Sprintf("ttl=%s url=%s secret=%s wetix-secret=%s upstream{%s, one-shot left %d}",
		v.ttl(), w.labelOfURL(v.cfg.BaseURL), w.labelOfSecret(v.cfg.ClientSecret), w.m.wetixSecret, w.m.up, w.m.oneShotLeft)
	if c.access != "" {
		iat, exp, _ := jwtTimes(c.access)
		s += fmt.Sprintf(" token life %s left %s", exp.Sub(iat), exp.Sub(now))
	} else {
		s += " no token"
	}
	s += fmt.Sprintf(" refresh token: present %v sent %v seed %v", c.refresh != "", c.refreshSent, c.fromSeed)
	if w.m.cooldown != nil {
		s += fmt.Sprintf(" cooldown %s for %s", w.m.cooldown.class, w.m.cooldown.until.Sub(now))
	}
	return s
}

// heal is invariant 6: every fault clears, the clock passes any cooldown or
// Retry-After, and one read must then succeed with at most one
// client-credentials call.
func (w *world) heal() error {
	w.m.up, w.m.oneShotLeft = upstream{}, 0
	w.wetix.ClearFaults()
	v := w.view()
	switch {
	case v.cfg == nil:
		ttl := max(1, int(0.3*w.sch.Params.AccessTTL.Seconds()))
		if _, err := w.writeConfig(cfgWrite{Secret: "A", SyncWeTix: true, URL: "emu", TTL: ttl}); err != nil {
			return broke(6, "config write while healing: %v", err)
		}
	default:
		w.wetix.SetClientSecret(v.cfg.ClientSecret)
		w.m.wetixSecret = w.labelOfSecret(v.cfg.ClientSecret)
		if w.labelOfURL(v.cfg.BaseURL) != "emu" {
			if _, err := w.writeConfig(cfgWrite{URL: "emu"}); err != nil {
				return broke(6, "config write while healing: %v", err)
			}
		}
	}
	w.m.deleted = false
	w.settle() // the write's own refresh must not straddle the clock jump
	w.clock.Advance(scheduleMaxCooldown)
	now := w.clock.Now()
	v = w.view()
	cc0, rf0 := w.wetix.Calls(wetixtest.GrantClientCredentials), w.wetix.Calls(wetixtest.GrantRefresh)
	resp, err := w.request(logical.ReadOperation, "token", nil)
	if got, text := classify(resp, err); got != oToken {
		return broke(6, "after faults cleared the read gave %s (%s); state: %s", got, text, w.describe(v, now))
	}
	cc, rf := w.wetix.Calls(wetixtest.GrantClientCredentials)-cc0, w.wetix.Calls(wetixtest.GrantRefresh)-rf0
	if cc > 1 || rf > 1 {
		return broke(6, "after faults cleared one read made %d client-credentials and %d refresh calls", cc, rf)
	}
	w.m.cooldown = nil
	return w.checkToken(resp, now, v.ttl())
}
