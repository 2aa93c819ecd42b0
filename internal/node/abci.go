package node

import (
	"context"

	abcicli "github.com/cometbft/cometbft/abci/client"
	abci "github.com/cometbft/cometbft/abci/types"
	cmtsync "github.com/cometbft/cometbft/libs/sync"
	"github.com/cometbft/cometbft/proxy"

	"github.com/agoranet/agora/internal/chain"
)

// clientCreator connects CometBFT to the app in-process. Like CometBFT's
// local client it serialises every ABCI call behind one mutex, so the app
// sees calls one at a time; unlike it, a mempool CheckTx first checks the
// tx's signature on the caller's goroutine, outside that mutex. Many RPC
// requests then verify signatures in parallel, and the serialised CheckTx
// finds the result in the app's cache.
type clientCreator struct {
	mtx *cmtsync.Mutex
	app *chain.App
}

func newClientCreator(app *chain.App) proxy.ClientCreator {
	return clientCreator{mtx: new(cmtsync.Mutex), app: app}
}

func (c clientCreator) NewABCIClient() (abcicli.Client, error) {
	return preverifying{Client: abcicli.NewLocalClient(c.mtx, c.app), app: c.app}, nil
}

type preverifying struct {
	abcicli.Client
	app *chain.App
}

func (p preverifying) CheckTxAsync(ctx context.Context, req *abci.RequestCheckTx) (*abcicli.ReqRes, error) {
	p.app.Preverify(req.Tx)
	return p.Client.CheckTxAsync(ctx, req)
}

func (p preverifying) CheckTx(ctx context.Context, req *abci.RequestCheckTx) (*abci.ResponseCheckTx, error) {
	p.app.Preverify(req.Tx)
	return p.Client.CheckTx(ctx, req)
}
