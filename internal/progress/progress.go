// Package progress shows how far a long piece of work has got: a bar
// redrawn in place on a terminal, a plain line at every tenth otherwise
// (a log, a pipe), and nothing when quiet (--output json, whose output is
// for programs).
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// Bar reports done of total units to w. Its methods may be called from
// any goroutine.
type Bar struct {
	w      io.Writer
	label  string
	total  uint64
	unit   func(uint64) string
	tty    bool
	quiet  bool
	mu     sync.Mutex
	tenth  int // the last tenth a plain line was written for
	drawn  time.Time
	closed bool
}

// New returns a bar for total units of work, labelled label ("put
// report.pdf"), written to w unless quiet; unit formats an amount (nil:
// Bytes).
func New(w io.Writer, label string, total uint64, quiet bool, unit func(uint64) string) *Bar {
	if unit == nil {
		unit = Bytes
	}
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &Bar{w: w, label: label, total: total, unit: unit, tty: tty, quiet: quiet, tenth: -1}
}

// Set reports that done units are done.
func (b *Bar) Set(done uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.quiet || b.closed {
		return
	}
	done = min(done, b.total)
	frac := 1.0
	if b.total > 0 {
		frac = float64(done) / float64(b.total)
	}
	if b.tty {
		// At most 20 redraws a second, and always the last.
		if done < b.total && time.Since(b.drawn) < 50*time.Millisecond {
			return
		}
		b.drawn = time.Now()
		const width = 30
		full := int(frac * width)
		fmt.Fprintf(b.w, "\r%s [%s%s] %3.0f%% %s of %s", b.label, strings.Repeat("=", full), strings.Repeat(" ", width-full), 100*frac, b.unit(done), b.unit(b.total))
		return
	}
	if t := int(frac * 10); t > b.tenth {
		b.tenth = t
		fmt.Fprintf(b.w, "%s: %s of %s (%.0f%%)\n", b.label, b.unit(done), b.unit(b.total), 100*frac)
	}
}

// Done ends the bar: the last figure stays, and the next output starts on
// a line of its own.
func (b *Bar) Done() {
	b.Set(b.total)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.quiet && !b.closed && b.tty {
		fmt.Fprintln(b.w)
	}
	b.closed = true
}

// Bytes formats n bytes in binary units (1.5 MiB).
func Bytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
