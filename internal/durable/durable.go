// Package durable writes files that must be on disk, whole, when the call
// returns: backups, counters and values a node must not lose.
package durable

import (
	"fmt"
	"os"
	"path/filepath"
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

// Replace puts b at path in place of what was there, atomically and
// durably: a crash leaves the old file or the new one, whole, and once it
// returns the new one survives a power loss (the file and its directory
// are synced).
func Replace(path string, b []byte) error {
	tmp := path + ".tmp"
	os.Remove(tmp) // a crash may have left one
	if err := WriteNew(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("replace %s: %w", path, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("replace %s: sync its directory: %w", path, err)
	}
	return nil
}
