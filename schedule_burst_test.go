package wetix

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// burstResult is one member's answer.
type burstResult struct {
	resp *logical.Response
	err  error
}

// burst runs its members concurrently. Only what holds under any
// interleaving is checked: each answer is one some order of the members
// could give, and every served token obeys invariant 4.
func (w *world) burst(st step, v storedView) error {
	if st.Fresh {
		w.settle()
		w.startBackend()
		w.m.forget()
	}
	now := w.clock.Now()
	env := w.env(v)
	changesConfig := burstHas(st, stConfigWrite) || burstHas(st, stConfigDelete)
	relaxed := w.m.fuzzy(now) || st.Storage != nil || w.m.oneShotLeft > 0 || changesConfig || v.secretChangePending()
	var readWant, rotateWant []verdict
	switch {
	case relaxed:
		readWant = anyAnswer()
		rotateWant = append([]verdict{oRotated}, allFailures...)
		if v.cfg == nil || burstHas(st, stConfigDelete) {
			readWant = append(readWant, oNotConf)
			rotateWant = append(rotateWant, oNotConf)
		}
	case v.cfg == nil:
		readWant, rotateWant = []verdict{oNotConf}, []verdict{oNotConf}
	default:
		// A read sees the state before the burst, or after a round some
		// member ran: with WeTix's behaviour fixed, every round ends alike.
		peek := w.m
		readWant = peek.expectRead(v, env, now)
		// A later round (a second rotate) meets the refresh token the first
		// left: marked sent after a failure, a fresh one after a success.
		for _, e := range []roundEnv{env, {url: env.url, secretOK: env.secretOK}, {url: env.url, secretOK: env.secretOK, usable: true, refreshLive: true}} {
			peek = w.m
			ok, class, _ := peek.round(e)
			if ok {
				readWant = append(readWant, oToken)
				rotateWant = append(rotateWant, oRotated)
			} else {
				readWant = append(readWant, answerFrom(class, v.credential(), v.ttl(), now)...)
				rotateWant = append(rotateWant, class)
			}
		}
	}
	if st.Storage != nil {
		readWant = append(readWant, oStorage, oStale)
		rotateWant = append(rotateWant, oStorage)
	}
	ttls := []time.Duration{v.ttl()}
	if v.cfg == nil {
		ttls = append(ttls, defaultTTL) // a create without ttl
	}
	for _, m := range st.Burst {
		if m.Kind == stConfigWrite && m.Cfg.TTL != 0 {
			ttls = append(ttls, time.Duration(m.Cfg.TTL)*time.Second)
		}
	}

	w.storage.set(st.Storage, true)
	results := make([]burstResult, len(st.Burst))
	var wg sync.WaitGroup
	for i, m := range st.Burst {
		if m.Kind == stConfigWrite {
			// Prepared here: configData may change WeTix's secret.
			data := w.configData(m.Cfg, v)
			m.Kind, m.Cfg = stConfigWrite, cfgWrite{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				time.Sleep(m.Offset)
				var op logical.Operation = logical.UpdateOperation
				if v.cfg == nil {
					op = logical.CreateOperation
				}
				results[i].resp, results[i].err = w.request(op, "config", data)
			}()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(m.Offset)
			results[i] = w.burstMember(m)
		}()
	}
	wg.Wait()
	w.storage.set(nil, false)
	w.settle()

	var wrote, deleted bool
	defer func() {
		// Which came last shows in storage: a config left means the write.
		switch cfgLeft := w.view().cfg != nil; {
		case deleted && !cfgLeft:
			w.m.deleted = true
		case wrote:
			w.m.deleted = false
		}
	}()
	for i, m := range st.Burst {
		r := results[i]
		got, text := classify(r.resp, r.err)
		switch m.Kind {
		case stRead:
			if !accepts(readWant, got) {
				return broke(5, "burst member %d (read) gave %s (%s), any interleaving gives %v; state before: %s", i, got, text, readWant, w.describe(v, now))
			}
			if err := w.checkNoSecrets(r.resp, r.err, true); err != nil {
				return err
			}
			if got == oToken || got == oStale {
				if err := w.checkToken(r.resp, now, ttls...); err != nil {
					return fmt.Errorf("burst member %d: %w", i, err)
				}
			}
		case stRotate:
			if !accepts(rotateWant, got) {
				return broke(5, "burst member %d (rotate) gave %s (%s), any interleaving gives %v; state before: %s", i, got, text, rotateWant, w.describe(v, now))
			}
		case stConfigWrite:
			// With a delete in the burst, an update may find no config.
			if st.Storage == nil && !burstHas(st, stConfigDelete) && (r.err != nil || r.resp.IsError()) {
				return broke(5, "burst member %d: config write failed with healthy storage: %v", i, r.err)
			}
			if r.err == nil && !r.resp.IsError() {
				wrote = true
			}
		case stConfigDelete:
			if r.err == nil && !r.resp.IsError() {
				deleted = true
			} else if st.Storage == nil {
				return broke(5, "burst member %d: config delete failed with healthy storage: %v", i, r.err)
			}
		}
	}

	if relaxed {
		w.blurAfter = true
		return nil
	}
	// The round the burst ran, if any, decides the cooldown.
	attempted := burstHas(st, stRotate)
	if all, some := due(v.credential(), v.ttl(), now); v.cfg != nil && some && (w.m.cooldown == nil || !now.Before(w.m.cooldown.until)) {
		if !all {
			w.blurAfter = true
		}
		attempted = attempted || burstHas(st, stRead) || burstHas(st, stTick)
	}
	if attempted && v.cfg != nil {
		peek := w.m
		ok, class, ra := w.m.round(env)
		w.m.recordRound(now, ok, class, ra)
		// Which failure a second round (refresh token now marked sent)
		// left behind depends on the interleaving.
		for _, usable := range []bool{false, true} {
			p := peek
			if ok2, class2, _ := p.round(roundEnv{url: env.url, secretOK: env.secretOK, usable: usable, refreshLive: usable}); ok2 != ok || class2 != class {
				w.blurAfter = true
			}
		}
	}
	return nil
}

// credentialsChanged: the config appeared, went, or got new credentials (a
// new generation, or a new client_secret alone).
func credentialsChanged(before, after storedView) bool {
	if before.cfg == nil || after.cfg == nil {
		return (before.cfg == nil) != (after.cfg == nil)
	}
	return before.cfg.Generation != after.cfg.Generation || before.cfg.SecretSerial != after.cfg.SecretSerial
}

func (w *world) burstMember(m step) burstResult {
	var r burstResult
	switch m.Kind {
	case stRead:
		r.resp, r.err = w.request(logical.ReadOperation, "token", nil)
	case stRotate:
		r.resp, r.err = w.request(logical.UpdateOperation, "rotate", nil)
	case stTick:
		r.err = w.tick()
	case stStatus:
		r.resp, r.err = w.request(logical.ReadOperation, "status", nil)
	case stConfigDelete:
		r.resp, r.err = w.request(logical.DeleteOperation, "config", nil)
	case stInvalidate:
		w.b.InvalidateKey(context.Background(), m.Key)
	}
	return r
}
