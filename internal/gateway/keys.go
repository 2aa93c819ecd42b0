package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/agoranet/agora/internal/ledger"
)

// importKeys moves the API keys of the ledger file earlier releases kept
// (JSON lines of credits and debits, <home>/keys.jsonl) into the database,
// once, and renames the file so it is not imported again.
func importKeys(ctx context.Context, l *ledger.Ledger, path string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	type old struct {
		hash, denom string
		balance     uint64
	}
	byID := map[string]*old{}
	var order []*old
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r struct {
			ID     string `json:"id"`
			Hash   string `json:"hash"`
			Denom  string `json:"denom"`
			Credit uint64 `json:"credit"`
			Debit  uint64 `json:"debit"`
		}
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			break // a torn last line
		}
		a := byID[r.ID]
		if r.Hash != "" {
			a = &old{hash: r.Hash, denom: r.Denom}
			byID[r.ID] = a
			order = append(order, a)
		}
		if a == nil {
			continue
		}
		a.balance += r.Credit
		a.balance -= min(a.balance, r.Debit)
	}
	for _, a := range order {
		if err := l.AddHashed(ctx, a.hash, a.denom, a.balance); err != nil {
			return fmt.Errorf("gateway: import %s: %w", path, err)
		}
	}
	return os.Rename(path, path+".imported")
}
