package wetix

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// signingStore owns the signing keys' entry: nothing else reads or writes
// it. Signs read a cached, immutable snapshot without locking; writes are
// serialised by mu, decide on a fresh read of storage, and drop the cache.
//
// The handover is two-step because WeTix holds one public key per client and
// changes it by hand: the operator writes a next key and sends its public
// key to WeTix, and promotes it once WeTix has switched. Promote keeps the
// old key as previous, so that rollback can undo a promotion that came too
// early (WeTix had not switched yet): rollback is the exact inverse.
//
// Every step is one write of the single entry (signing_store.go), so an
// interrupted step reads as not done, and running it again does it.
type signingStore struct {
	mu    sync.Mutex
	cache entryCache[signingKeys]
	now   func() time.Time
}

// signingKeys is one consistent view of the three slots; nil fields are
// empty slots. It is never modified once built.
type signingKeys struct {
	current, next, previous *signingKey
}

type keySlot string

const (
	slotCurrent keySlot = "signing-key"
	slotNext    keySlot = "signing-key/next"
)

var (
	errNoSigningKey = errors.New("no signing key: generate one (vault write -f <mount>/signing-key) or import yours (vault write <mount>/signing-key private_key=@key.pem), then send its public key to WeTix")
	errNoNextKey    = errors.New("no next key to promote: write one first (vault write -f <mount>/signing-key/next), send its public key to WeTix, and promote once WeTix has switched")
)

func (s *signingStore) keys(ctx context.Context, storage logical.Storage) (*signingKeys, error) {
	if k := s.cache.get(); k != nil {
		return k, nil
	}
	since := s.cache.begin()
	k, err := readSigningKeys(ctx, storage)
	if err != nil {
		return nil, err
	}
	s.cache.fill(since, k)
	return k, nil
}

// invalidate drops the cache when another node (or a write here) changed
// an entry.
func (s *signingStore) invalidate(storageKey string) {
	if slices.Contains(signingStoragePaths, storageKey) {
		s.dropCache()
	}
}

func (s *signingStore) dropCache() { s.cache.set(nil) }

// stored is the entry a write starts from: copies of the slots' entries,
// to be changed and written back whole.
func (k *signingKeys) stored() signingKeysEntry {
	entryOf := func(key *signingKey) *signingKeyEntry {
		if key == nil {
			return nil
		}
		e := key.entry
		return &e
	}
	return signingKeysEntry{Current: entryOf(k.current), Next: entryOf(k.next), Previous: entryOf(k.previous)}
}

// signer returns the key that signs now.
func (s *signingStore) signer(ctx context.Context, storage logical.Storage) (*signingKey, error) {
	k, err := s.keys(ctx, storage)
	if err != nil {
		return nil, err
	}
	if k.current == nil {
		return nil, errNoSigningKey
	}
	return k.current, nil
}

// slotTakenError is a refused write: the slot already holds a key, which
// WeTix may already know.
type slotTakenError struct{ slot keySlot }

func (e slotTakenError) Error() string {
	if e.slot == slotCurrent {
		return "a signing key already exists; a write never replaces it, because WeTix holds its public key. To change keys, write signing-key/next, send its public key to WeTix and promote it; to start over, delete signing-key first"
	}
	return "a next key is already waiting; a write never replaces it, because its public key may already be with WeTix. Delete it first (vault delete <mount>/signing-key/next)"
}

// put stores a new key in an empty slot.
func (s *signingStore) put(ctx context.Context, storage logical.Storage, slot keySlot, e signingKeyEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := readSigningKeys(ctx, storage)
	if err != nil {
		return err
	}
	stored := k.stored()
	if slot == slotCurrent {
		if k.current != nil {
			return slotTakenError{slot}
		}
		e.PromotedAt = s.now().UTC()
		stored.Current = &e
	} else {
		if k.next != nil {
			return slotTakenError{slot}
		}
		stored.Next = &e
	}
	defer s.dropCache()
	return writeSigningKeys(ctx, storage, stored)
}

// remove deletes the slot's key. Deleting the signing key deletes the
// previous one too: after a delete, no key that signed for this mount is
// left in Vault. It reports whether there was anything to delete.
func (s *signingStore) remove(ctx context.Context, storage logical.Storage, slot keySlot) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := readSigningKeys(ctx, storage)
	if err != nil {
		return false, err
	}
	stored := k.stored()
	if slot == slotNext {
		if k.next == nil {
			return false, nil
		}
		stored.Next = nil
	} else {
		if k.current == nil && k.previous == nil {
			return false, nil
		}
		stored.Current, stored.Previous = nil, nil
	}
	defer s.dropCache()
	return true, writeSigningKeys(ctx, storage, stored)
}

// promote makes the next key the signing key and keeps the old one as
// previous.
func (s *signingStore) promote(ctx context.Context, storage logical.Storage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := readSigningKeys(ctx, storage)
	if err != nil {
		return err
	}
	if k.next == nil {
		return errNoNextKey
	}
	now := s.now().UTC()
	var retired *signingKeyEntry
	if k.current != nil {
		old := k.current.entry
		old.RetiredAt = now
		retired = &old
	}
	promoted := k.next.entry
	promoted.PromotedAt = now
	defer s.dropCache()
	return writeSigningKeys(ctx, storage, signingKeysEntry{Current: &promoted, Previous: retired})
}

var (
	errNoPreviousKey = errors.New("no previous key to roll back to: rollback undoes the last promote, and there was none since the signing key was written or deleted")
	errNextWaiting   = errors.New("a next key is waiting; rollback would put the signing key in its place. Promote it or delete it (vault delete <mount>/signing-key/next) first")
)

// rollback undoes the last promote: the previous key signs again, and the
// key it replaced waits as next, to be promoted again once WeTix has it.
func (s *signingStore) rollback(ctx context.Context, storage logical.Storage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := readSigningKeys(ctx, storage)
	if err != nil {
		return err
	}
	switch {
	case k.previous == nil || k.current == nil:
		return errNoPreviousKey
	case k.next != nil:
		return errNextWaiting
	}
	demoted := k.current.entry
	demoted.PromotedAt = time.Time{}
	restored := k.previous.entry
	restored.RetiredAt = time.Time{}
	restored.PromotedAt = s.now().UTC()
	defer s.dropCache()
	return writeSigningKeys(ctx, storage, signingKeysEntry{Current: &restored, Next: &demoted})
}
