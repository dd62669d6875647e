package wetix

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// signingStore owns the signing key entries: nothing else reads or writes
// them. Signs read a cached, immutable snapshot without locking; writes are
// serialised by mu, decide on a fresh read of storage, and drop the cache.
//
// The handover is two-step because WeTix holds one public key per client and
// changes it by hand: the operator writes a next key and sends its public
// key to WeTix, and promotes it once WeTix has switched. Promote keeps the
// old key as previous, so that rollback can undo a promotion that came too
// early (WeTix had not switched yet): rollback is the exact inverse.
//
// Each step writes several entries; the order is chosen so that an
// interruption at any point leaves a state that reads as either the old or
// the new one. A next or previous entry equal to the current key is the
// leftover of such an interruption and is ignored (and overwritten by the
// next write).
type signingStore struct {
	mu    sync.Mutex
	cache entryCache[signingKeys]
	now   func() time.Time
}

// signingKeys is one consistent view of the three entries; nil fields are
// absent keys. It is never modified once built.
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
	k, err := loadSigningKeys(ctx, storage)
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

func loadSigningKeys(ctx context.Context, storage logical.Storage) (*signingKeys, error) {
	var k signingKeys
	var err error
	if k.current, err = readSigningKey(ctx, storage, signingCurrentStoragePath); err != nil {
		return nil, err
	}
	if k.next, err = readSigningKey(ctx, storage, signingNextStoragePath); err != nil {
		return nil, err
	}
	if k.previous, err = readSigningKey(ctx, storage, signingPreviousStoragePath); err != nil {
		return nil, err
	}
	if k.current != nil {
		if k.next != nil && k.next.fingerprint == k.current.fingerprint {
			k.next = nil
		}
		if k.previous != nil && k.previous.fingerprint == k.current.fingerprint {
			k.previous = nil
		}
	}
	return &k, nil
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
	k, err := loadSigningKeys(ctx, storage)
	if err != nil {
		return err
	}
	path := signingNextStoragePath
	if slot == slotCurrent {
		if k.current != nil {
			return slotTakenError{slot}
		}
		e.PromotedAt = s.now().UTC()
		path = signingCurrentStoragePath
	} else if k.next != nil {
		return slotTakenError{slot}
	}
	defer s.dropCache()
	return writeSigningKey(ctx, storage, path, e)
}

// remove deletes the slot's key. Deleting the signing key deletes the
// previous one too: after a delete, no key that signed for this mount is
// left in Vault. It reports whether there was anything to delete.
func (s *signingStore) remove(ctx context.Context, storage logical.Storage, slot keySlot) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := loadSigningKeys(ctx, storage)
	if err != nil {
		return false, err
	}
	defer s.dropCache()
	if slot == slotNext {
		return k.next != nil, storage.Delete(ctx, signingNextStoragePath)
	}
	// Previous first: if the second delete fails, the key that signs is
	// still there and a retry finishes the job.
	if err := storage.Delete(ctx, signingPreviousStoragePath); err != nil {
		return false, err
	}
	return k.current != nil || k.previous != nil, storage.Delete(ctx, signingCurrentStoragePath)
}

// promote makes the next key the signing key and keeps the old one as
// previous.
func (s *signingStore) promote(ctx context.Context, storage logical.Storage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := loadSigningKeys(ctx, storage)
	if err != nil {
		return err
	}
	if k.next == nil {
		return errNoNextKey
	}
	defer s.dropCache()
	now := s.now().UTC()
	// Order matters, see signingStore: previous, then current, then next.
	if k.current != nil {
		old := k.current.entry
		old.RetiredAt = now
		if err := writeSigningKey(ctx, storage, signingPreviousStoragePath, old); err != nil {
			return err
		}
	}
	promoted := k.next.entry
	promoted.PromotedAt = now
	if err := writeSigningKey(ctx, storage, signingCurrentStoragePath, promoted); err != nil {
		return err
	}
	return storage.Delete(ctx, signingNextStoragePath)
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
	k, err := loadSigningKeys(ctx, storage)
	if err != nil {
		return err
	}
	switch {
	case k.previous == nil || k.current == nil:
		return errNoPreviousKey
	case k.next != nil:
		return errNextWaiting
	}
	defer s.dropCache()
	// Next, then current, then previous: the inverse of promote's order.
	demoted := k.current.entry
	demoted.PromotedAt = time.Time{}
	if err := writeSigningKey(ctx, storage, signingNextStoragePath, demoted); err != nil {
		return err
	}
	restored := k.previous.entry
	restored.RetiredAt = time.Time{}
	restored.PromotedAt = s.now().UTC()
	if err := writeSigningKey(ctx, storage, signingCurrentStoragePath, restored); err != nil {
		return err
	}
	return storage.Delete(ctx, signingPreviousStoragePath)
}
