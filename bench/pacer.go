package bench

import (
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// lateSlack is how far behind its slot a request may be sent before it
// counts as late: the scheduler's and the sleep's own jitter.
const lateSlack = 10 * time.Millisecond

// pacedLoad sends one target at a fixed rate, open loop: request n is due
// at start + n/rate whatever happened to the others, and any of the workers
// that is free sends it. A machine that cannot keep up shows as requests
// sent late and an achieved rate below the target, never as a slower
// schedule. Latency is the round trip from send to answer.
type pacedLoad struct {
	client  *loadClient
	target  target
	rate    float64
	workers int
	// inspect, if set, is handed every 200 answer's body; an error it
	// returns counts the answer as an error. It runs on the worker
	// goroutines, concurrently.
	inspect func(body []byte) error

	start time.Time
	stop  atomic.Bool  // set to end the run early: no slot is sent after it
	next  atomic.Int64 // the next slot to send
	sent  atomic.Int64
	late  atomic.Int64

	mu       sync.Mutex
	ok, errs int             // since the run started
	win      []time.Duration // latencies of the answers since the last window
	winErrs  int
	winLag   time.Duration // the most a request of the window was sent behind its slot
	all      []time.Duration
	firstErr string
}

// window is what happened between two samples.
type window struct {
	OK, Errors int
	P50, P99   time.Duration
	MaxLag     time.Duration
}

// run sends from start for d, then waits for the requests in flight, and
// returns when all workers are done.
func (p *pacedLoad) run(start time.Time, d time.Duration) {
	p.start = start
	end := p.start.Add(d)
	var wg sync.WaitGroup
	for w := 0; w < p.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := p.next.Add(1) - 1
				due := p.start.Add(time.Duration(float64(n) * float64(time.Second) / p.rate))
				if !due.Before(end) {
					return
				}
				if wait := time.Until(due); wait > 0 {
					time.Sleep(wait)
				}
				if p.stop.Load() {
					return
				}
				t0 := time.Now()
				status, body, err := p.client.do(p.target)
				p.record(t0, time.Since(t0), t0.Sub(due), status, body, err)
			}
		}()
	}
	wg.Wait()
}

func (p *pacedLoad) record(sentAt time.Time, lat, lag time.Duration, status int, body []byte, err error) {
	p.sent.Add(1)
	if lag > lateSlack {
		p.late.Add(1)
	}
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("HTTP %d: %.300s", status, body)
	}
	if err == nil && p.inspect != nil {
		err = p.inspect(body)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.winLag = max(p.winLag, lag)
	if err != nil {
		p.errs++
		p.winErrs++
		if p.firstErr == "" {
			p.firstErr = fmt.Sprintf("at %s: %v", sentAt.Sub(p.start).Round(time.Millisecond), err)
		}
		return
	}
	p.ok++
	p.win = append(p.win, lat)
	p.all = append(p.all, lat)
}

// takeWindow returns the window since the previous call and starts a new one.
func (p *pacedLoad) takeWindow() window {
	p.mu.Lock()
	lat, errs, lag := p.win, p.winErrs, p.winLag
	p.win, p.winErrs, p.winLag = make([]time.Duration, 0, len(lat)), 0, 0
	p.mu.Unlock()
	sortDurations(lat)
	return window{OK: len(lat), Errors: errs, P50: percentile(lat, 0.50), P99: percentile(lat, 0.99), MaxLag: lag}
}

// totals are the whole run's figures.
func (p *pacedLoad) totals() (ok, errs int, p50, p99 time.Duration, firstErr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	all := append([]time.Duration(nil), p.all...)
	sortDurations(all)
	return p.ok, p.errs, percentile(all, 0.50), percentile(all, 0.99), p.firstErr
}
