//go:build unix

package piecestore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lock takes dir's lock file for this process, so that two nodes never
// share a store: each would count the other's files against its quota,
// and rename the other's half-written files into place. The kernel drops
// the lock when the process dies.
func lock(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("piecestore: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("piecestore: %s is in use by another storage node; stop it, or give this one another --dir", dir)
		}
		return nil, fmt.Errorf("piecestore: lock %s: %w", dir, err)
	}
	return f, nil
}
