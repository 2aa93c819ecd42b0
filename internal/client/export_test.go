package client

import (
	"context"

	"github.com/agoranet/agora/internal/chain/addr"
)

// WaitSigned waits, as Submit does after its broadcast, for the tx with
// this hash that signer signed at seq.
func (c *Client) WaitSigned(ctx context.Context, hash [32]byte, signer addr.Address, seq uint64) (*Result, error) {
	done, stop := c.watchTx(hash)
	defer stop()
	return c.waitTx(ctx, hash, done, c.sequencePassed(signer, seq))
}
