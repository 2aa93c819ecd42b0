package node

import (
	"log/slog"

	cmtlog "github.com/cometbft/cometbft/libs/log"
)

// cmtLogger sends CometBFT's logs to slog. CometBFT logs every block and
// peer event at Info; those go to Debug so a node's own logs stay readable.
type cmtLogger struct{ l *slog.Logger }

func (c cmtLogger) Debug(msg string, kv ...any) { c.l.Debug(msg, kv...) }
func (c cmtLogger) Info(msg string, kv ...any)  { c.l.Debug(msg, kv...) }
func (c cmtLogger) Error(msg string, kv ...any) { c.l.Error(msg, kv...) }
func (c cmtLogger) With(kv ...any) cmtlog.Logger {
	return cmtLogger{c.l.With(kv...)}
}
