// Package durable writes files that must be on disk, whole, when the call
// returns: backups, above all.
package durable

import (
	"fmt"
	"os"
)

// WriteNew writes b to a new file at path (failing if it exists) and
// fsyncs it.
func WriteNew(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
