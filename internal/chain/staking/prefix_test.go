package staking

import (
	"bytes"
	"testing"
)

// No key prefix of the module is a prefix of another: a scan of one would
// read the other's records (found by review: the per-module bonds took
// the redelegation queue's prefix, whose EndBlock scan would have decoded
// a bond as a redelegation and halted the chain).
func TestKeyPrefixesAreDisjoint(t *testing.T) {
	keys := map[string][]byte{"stake": stakePrefix, "queue": queuePrefix, "byAcct": byAcctPrefix, "hold": holdPrefix, "need": needPrefix,
		"params": paramsKey, "val": valPrefix, "cons": consPrefix, "del": delPrefix, "delByVal": delByValPrefix, "undQueue": undQueuePrefix,
		"undByDel": undByDelPrefix, "undByVal": undByValPrefix, "redQueue": redQueuePrefix, "redByDel": redByDelPrefix, "redBySrc": redBySrcPrefix,
		"redInto": redIntoPrefix, "set": setPrefix, "sign": signPrefix, "miss": missPrefix, "nextID": nextIDKey, "ceiling": ceilingKey,
		"unallocated": unallocatedKey, "ownsSet": ownsSetKey, "rotated": rotatedPrefix}
	for a, ka := range keys {
		for b, kb := range keys {
			if a != b && bytes.HasPrefix(kb, ka) {
				t.Errorf("%s (%q) is a prefix of %s (%q)", a, ka, b, kb)
			}
		}
	}
}
