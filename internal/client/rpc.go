package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	cmtbytes "github.com/cometbft/cometbft/libs/bytes"
	cmtjson "github.com/cometbft/cometbft/libs/json"
	"github.com/gorilla/websocket"
)

// rpc is a small client for the CometBFT JSON-RPC methods Agora uses. It
// is ours rather than CometBFT's rpc/client/http because that one links the
// node's config, p2p and database packages into every program that only
// wants to talk to a node (the SDK among them).
type rpc struct {
	url  string
	http *http.Client
	id   atomic.Int64

	mu        sync.Mutex // guards ws
	ws        *wsConn
	done      chan struct{} // closed by Close
	closeOnce sync.Once
}

func newRPC(url string) *rpc {
	// A transport of its own: a connection pooled for one node must not be
	// reused for another that later listens on the same address.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &rpc{url: strings.TrimSuffix(url, "/"), http: &http.Client{Timeout: 30 * time.Second, Transport: tr}, done: make(chan struct{})}
}

type rpcRequest struct {
	JSONRPC string `json:"jsonrpc"`
	ID      int64  `json:"id"`
	Method  string `json:"method"`
	Params  any    `json:"params"`
}

type rpcResponse struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *rpcError       `json:"error"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    string `json:"data"`
}

func (e *rpcError) Error() string {
	if e.Data != "" {
		return fmt.Sprintf("RPC error %d: %s: %s", e.Code, e.Message, e.Data)
	}
	return fmt.Sprintf("RPC error %d: %s", e.Code, e.Message)
}

// call runs one JSON-RPC method over HTTP and decodes its result with
// CometBFT's JSON conventions (64-bit integers as strings, bytes as base64).
func (r *rpc) call(ctx context.Context, method string, params map[string]any, out any) error {
	body, err := json.Marshal(rpcRequest{JSONRPC: "2.0", ID: r.id.Add(1), Method: method, Params: params})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	select {
	case <-r.done:
		// A closed client still answers calls, but keeps no connection
		// open after them.
		req.Close = true
	default:
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	var res rpcResponse
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("%s: HTTP %d, not a JSON-RPC answer: %.200s", method, resp.StatusCode, raw)
	}
	if res.Error != nil {
		return res.Error
	}
	return cmtjson.Unmarshal(res.Result, out)
}

// The result shapes of the methods used, as CometBFT encodes them.

type resultStatus struct {
	NodeInfo struct {
		ID      string `json:"id"`
		Network string `json:"network"`
		Moniker string `json:"moniker"`
	} `json:"node_info"`
	SyncInfo struct {
		LatestAppHash     cmtbytes.HexBytes `json:"latest_app_hash"`
		LatestBlockHeight int64             `json:"latest_block_height"`
		LatestBlockTime   time.Time         `json:"latest_block_time"`
		CatchingUp        bool              `json:"catching_up"`
	} `json:"sync_info"`
}

type resultQuery struct {
	Response abci.ResponseQuery `json:"response"`
}

type resultBroadcast struct {
	Code      uint32            `json:"code"`
	Log       string            `json:"log"`
	Codespace string            `json:"codespace"`
	Hash      cmtbytes.HexBytes `json:"hash"`
}

type resultTx struct {
	Hash     cmtbytes.HexBytes `json:"hash"`
	Height   int64             `json:"height"`
	TxResult abci.ExecTxResult `json:"tx_result"`
	Tx       []byte            `json:"tx"`
}

type resultHeader struct {
	Header *struct {
		Height  int64             `json:"height"`
		Time    time.Time         `json:"time"`
		AppHash cmtbytes.HexBytes `json:"app_hash"`
	} `json:"header"`
}

type resultValidators struct {
	Validators []struct {
		Address     cmtbytes.HexBytes `json:"address"`
		VotingPower int64             `json:"voting_power"`
	} `json:"validators"`
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

// Events over the websocket.

// Event is one event a subscription delivered.
type Event struct {
	Query string
	// Events holds the event's indexed attributes, "type.key" to values,
	// with "tm.event" naming the kind (Tx, NewBlock, ...).
	Events map[string][]string
	// Tx is set for a Tx event.
	Tx *abci.TxResult
}

type wsConn struct {
	conn *websocket.Conn
	wmu  sync.Mutex // guards writes to conn

	mu     sync.Mutex // guards the fields below
	subs   map[string]chan Event
	ended  map[string]chan struct{} // closed when a subscription is dropped, to end its watcher
	closed bool
	err    error
	gone   chan struct{} // closed when the connection ends
}

// subscribe opens (or reuses) the websocket and subscribes to query. The
// channel is closed when the connection ends or ctx is done.
func (r *rpc) subscribe(ctx context.Context, query string, buf int) (<-chan Event, error) {
	ws, err := r.wsConn(ctx)
	if err != nil {
		return nil, err
	}
	id := "s" + strconv.FormatInt(r.id.Add(1), 10)
	ch := make(chan Event, buf)
	ws.mu.Lock()
	if ws.closed {
		ws.mu.Unlock()
		return nil, fmt.Errorf("websocket closed: %v", ws.err)
	}
	ws.subs[id] = ch
	ended := make(chan struct{})
	ws.ended[id] = ended
	ws.mu.Unlock()
	req := map[string]any{"jsonrpc": "2.0", "id": id, "method": "subscribe", "params": map[string]any{"query": query}}
	ws.wmu.Lock()
	ws.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	err = ws.conn.WriteJSON(req)
	ws.wmu.Unlock()
	if err != nil {
		ws.drop(id)
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-r.done:
		case <-ended:
			return // the node refused or ended it: nothing to unsubscribe
		case <-ws.gone:
			return // the connection ended: read closed every channel
		}
		if ws.drop(id) {
			ws.wmu.Lock()
			ws.conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
			_ = ws.conn.WriteJSON(map[string]any{"jsonrpc": "2.0", "id": id + "u", "method": "unsubscribe", "params": map[string]any{"query": query}})
			ws.wmu.Unlock()
		}
	}()
	return ch, nil
}

// drop removes a subscription and closes its channel; false if it was
// already gone.
func (ws *wsConn) drop(id string) bool {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ch, ok := ws.subs[id]
	if ok {
		delete(ws.subs, id)
		close(ch)
	}
	if ended, ok := ws.ended[id]; ok {
		delete(ws.ended, id)
		close(ended)
	}
	return ok
}

// errClosed is what a closed client answers a subscription.
var errClosed = errors.New("client: closed")

func (r *rpc) wsConn(ctx context.Context) (*wsConn, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.done:
		return nil, errClosed // a connection made now would outlive Close
	default:
	}
	if r.ws != nil {
		r.ws.mu.Lock()
		closed := r.ws.closed
		r.ws.mu.Unlock()
		if !closed {
			return r.ws, nil
		}
	}
	u := "ws" + strings.TrimPrefix(r.url, "http") + "/websocket"
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // Close ends a dial in progress
		select {
		case <-r.done:
			cancel()
		case <-dctx.Done():
		}
	}()
	conn, _, err := d.DialContext(dctx, u, nil)
	if err != nil {
		return nil, fmt.Errorf("websocket %s: %w", u, err)
	}
	select {
	case <-r.done:
		conn.Close()
		return nil, errClosed
	default:
	}
	ws := &wsConn{conn: conn, subs: map[string]chan Event{}, ended: map[string]chan struct{}{}, gone: make(chan struct{})}
	r.ws = ws
	go ws.read()
	return ws, nil
}

// read delivers events to their subscriptions until the connection ends.
// A subscriber too slow to keep its buffer free misses events rather than
// stalling every other subscription.
func (ws *wsConn) read() {
	defer func() {
		ws.mu.Lock()
		ws.closed = true
		for id, ch := range ws.subs {
			delete(ws.subs, id)
			close(ch)
		}
		ws.mu.Unlock()
		ws.conn.Close()
		close(ws.gone)
	}()
	for {
		_, raw, err := ws.conn.ReadMessage()
		if err != nil {
			ws.mu.Lock()
			ws.err = err
			ws.mu.Unlock()
			return
		}
		var res rpcResponse
		if json.Unmarshal(raw, &res) != nil {
			continue
		}
		var id string
		if json.Unmarshal(res.ID, &id) != nil {
			continue
		}
		if res.Error != nil {
			// The node refused or cancelled the subscription (too many
			// subscribers, a subscriber too slow): end it, so its owner
			// sees the channel close and subscribes again or polls.
			ws.drop(id)
			continue
		}
		if len(res.Result) < 3 {
			continue // a subscribe confirmation: {}
		}
		var body struct {
			Query string              `json:"query"`
			Data  json.RawMessage     `json:"data"`
			Evs   map[string][]string `json:"events"`
		}
		if json.Unmarshal(res.Result, &body) != nil || body.Data == nil {
			continue
		}
		ev := Event{Query: body.Query, Events: body.Evs}
		var data struct {
			Type  string          `json:"type"`
			Value json.RawMessage `json:"value"`
		}
		if json.Unmarshal(body.Data, &data) == nil && data.Type == "tendermint/event/Tx" {
			var v struct {
				TxResult abci.TxResult `json:"TxResult"`
			}
			if cmtjson.Unmarshal(data.Value, &v) == nil {
				ev.Tx = &v.TxResult
			}
		}
		ws.mu.Lock()
		if ch, ok := ws.subs[id]; ok {
			select {
			case ch <- ev:
			default:
			}
		}
		ws.mu.Unlock()
	}
}

func (r *rpc) close() {
	// done first, without the lock: a dial in progress holds it and
	// watches done.
	r.closeOnce.Do(func() { close(r.done) })
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ws != nil {
		r.ws.conn.Close()
	}
	r.http.CloseIdleConnections()
}
