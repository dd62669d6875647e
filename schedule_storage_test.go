package wetix

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// errInjectedStorage is what a storage fault returns; the oracle recognises a
// storage failure in an answer by this text.
var errInjectedStorage = errors.New("injected storage failure")

// storageFault fails Count operations of kind Op ("get", "put", "delete",
// "list") after letting Skip of them through. It lasts one step.
type storageFault struct {
	Op          string
	Skip, Count int
}

func (f storageFault) String() string {
	return fmt.Sprintf("%s(skip %d, fail %d)", f.Op, f.Skip, f.Count)
}

// faultyStorage is the storage a schedule's backends share across crashes.
// Faults apply per step; slow adds a real delay after each operation, which
// widens the windows in which concurrent requests interleave during a burst.
type faultyStorage struct {
	inner *logical.InmemStorage

	mu    sync.Mutex
	fault *storageFault
	slow  bool
	rng   *rand.Rand
}

func newFaultyStorage() *faultyStorage {
	return &faultyStorage{inner: &logical.InmemStorage{}, rng: rand.New(rand.NewPCG(1, 2))}
}

func (s *faultyStorage) set(f *storageFault, slow bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f != nil {
		c := *f
		f = &c
	}
	s.fault, s.slow = f, slow
}

// hit says whether this operation fails, and how long it takes afterwards.
func (s *faultyStorage) hit(op string) (bool, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d time.Duration
	if s.slow {
		d = time.Duration(s.rng.IntN(1500)) * time.Microsecond
	}
	f := s.fault
	if f == nil || f.Op != op {
		return false, d
	}
	if f.Skip > 0 {
		f.Skip--
		return false, d
	}
	if f.Count > 0 {
		f.Count--
		return true, d
	}
	return false, d
}

// The delay comes after the real operation: a read that returns a value
// which has changed meanwhile is exactly the stale copy a race produces.
func (s *faultyStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	fail, d := s.hit("get")
	if fail {
		return nil, errInjectedStorage
	}
	e, err := s.inner.Get(ctx, key)
	time.Sleep(d)
	return e, err
}

func (s *faultyStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	fail, d := s.hit("put")
	if fail {
		return errInjectedStorage
	}
	err := s.inner.Put(ctx, e)
	time.Sleep(d)
	return err
}

func (s *faultyStorage) Delete(ctx context.Context, key string) error {
	fail, d := s.hit("delete")
	if fail {
		return errInjectedStorage
	}
	err := s.inner.Delete(ctx, key)
	time.Sleep(d)
	return err
}

func (s *faultyStorage) List(ctx context.Context, prefix string) ([]string, error) {
	fail, d := s.hit("list")
	if fail {
		return nil, errInjectedStorage
	}
	keys, err := s.inner.List(ctx, prefix)
	time.Sleep(d)
	return keys, err
}
