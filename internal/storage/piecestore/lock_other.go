//go:build !unix

package piecestore

import (
	"fmt"
	"os"
	"path/filepath"
)

// lock opens dir's lock file; without flock here, nothing stops a second
// process from using the same store.
func lock(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("piecestore: %w", err)
	}
	return f, nil
}
