// Package facilitator is an x402 facilitator for Agora: POST /verify, POST
// /settle and GET /supported, as the x402 v2 spec describes them, for the
// exact and batch-settlement schemes on "cosmos:<chain-id>". It lets a
// server take x402 payments without talking to the chain itself.
package facilitator

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/channel/channelpb"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/client"
	"github.com/agoranet/agora/internal/httpserve"
	"github.com/agoranet/agora/internal/keyring"
	"github.com/agoranet/agora/internal/paygate"
	"github.com/agoranet/agora/x402"
)

// Config configures a facilitator.
type Config struct {
	// Listen is the TCP address to serve on.
	Listen string
	// TLSCert and TLSKey, PEM files, make it serve HTTPS; both empty:
	// plain HTTP.
	TLSCert, TLSKey string
	// Key submits exact settlements and pays their fees.
	Key ed25519.PrivateKey
	// Account is the account Key signs for, when a key rotation made it
	// differ from Key's own address (keyring.Key.Account); zero otherwise.
	Account addr.Address
	Chain   *client.Client
	ChainID string
	// StatePath is the file where settlements are recorded, so that a
	// second /settle of a payment, even after a restart, returns the
	// first result and a voucher settles once.
	StatePath string
	// Payees are servers whose payments it settles (and whose exact
	// transfers it pays the fees of), besides the providers registered on
	// chain; no one else's.
	Payees []string
	// ExpiryMargin refuses vouchers on channels that expire within this
	// many blocks, as a payment gate does (default 20).
	ExpiryMargin int64
	// Logger receives the daemon's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a facilitator's defaults.
func DefaultConfig() Config { return Config{Listen: "127.0.0.1:8402"} }

// Validate checks the config.
func (c Config) Validate() error {
	if len(c.Key) != ed25519.PrivateKeySize || c.Chain == nil || c.ChainID == "" || c.StatePath == "" {
		return errors.New("facilitator: need a key, a chain client, a chain-id and a state file")
	}
	return nil
}

// Server is a running facilitator.
type Server struct {
	cfg   Config
	addr  addr.Address
	http  *httpserve.Server
	state *settled
}

// Start listens and serves until Shutdown.
func Start(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultConfig().Listen
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ExpiryMargin == 0 {
		cfg.ExpiryMargin = 20
	}
	s := &Server{cfg: cfg, addr: keyring.AccountOf(cfg.Key, cfg.Account)}
	var err error
	if s.state, err = openSettled(cfg.StatePath); err != nil {
		return nil, err
	}
	opts := httpserve.DefaultOptions()
	_, err = opts.WithTLS(cfg.TLSCert, cfg.TLSKey)
	if err == nil {
		s.http, err = httpserve.ListenWith(cfg.Listen, s.Handler(), cfg.Logger, opts)
	}
	if err != nil {
		s.state.close()
		return nil, fmt.Errorf("facilitator: %w", err)
	}
	return s, nil
}

// URL is where it serves.
func (s *Server) URL() string { return s.http.URL() }

// Shutdown stops serving.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	return errors.Join(err, s.state.close())
}

// Handler is the facilitator's HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	network := x402.Network(s.cfg.ChainID)
	mux.HandleFunc("GET /supported", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, x402.SupportedResponse{
			Kinds: []x402.SupportedKind{
				{X402Version: x402.Version, Scheme: x402.SchemeExact, Network: network},
				{X402Version: x402.Version, Scheme: x402.SchemeBatch, Network: network},
			},
			Extensions: []string{},
			Signers:    map[string][]string{"cosmos:*": {s.addr.String()}},
		})
	})
	mux.HandleFunc("POST /verify", func(w http.ResponseWriter, r *http.Request) {
		req, perr := s.read(r)
		if perr == nil {
			_, _, perr = s.verify(r.Context(), req)
		}
		if perr != nil {
			writeJSON(w, http.StatusOK, x402.VerifyResponse{IsValid: false, InvalidReason: perr.Reason, InvalidMessage: perr.Msg})
			return
		}
		writeJSON(w, http.StatusOK, x402.VerifyResponse{IsValid: true, Payer: payer(req)})
	})
	mux.HandleFunc("POST /settle", func(w http.ResponseWriter, r *http.Request) {
		req, perr := s.read(r)
		var res x402.SettlementResponse
		if perr == nil {
			res, perr = s.settle(r.Context(), req)
		}
		if perr != nil {
			writeJSON(w, http.StatusOK, x402.SettlementResponse{Success: false, ErrorReason: perr.Reason, ErrorMessage: perr.Msg, Network: network})
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func bad(reason, format string, args ...any) *paygate.PaymentError {
	return &paygate.PaymentError{Status: http.StatusBadRequest, Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

func (s *Server) read(r *http.Request) (*x402.VerifyRequest, *paygate.PaymentError) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		return nil, bad(x402.ReasonInvalidPayload, "cannot read the body: %v", err)
	}
	var req x402.VerifyRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, bad(x402.ReasonInvalidPayload, "the body is not a verify/settle request: %v", err)
	}
	if req.X402Version != x402.Version || req.PaymentPayload.X402Version != x402.Version {
		return nil, bad(x402.ReasonInvalidX402Version, "x402Version must be %d", x402.Version)
	}
	if err := req.PaymentRequirements.Validate(); err != nil {
		return nil, bad(x402.ReasonInvalidPaymentRequirements, "%v", err)
	}
	if err := req.PaymentPayload.Validate(); err != nil {
		return nil, bad(x402.ReasonInvalidPayload, "%v", err)
	}
	rq, acc := req.PaymentRequirements, req.PaymentPayload.Accepted
	if rq.Network != x402.Network(s.cfg.ChainID) {
		return nil, bad(x402.ReasonInvalidNetwork, "network %q; this facilitator settles on %s", rq.Network, x402.Network(s.cfg.ChainID))
	}
	if acc.Scheme != rq.Scheme || acc.Network != rq.Network || acc.Amount != rq.Amount || acc.Asset != rq.Asset || acc.PayTo != rq.PayTo {
		return nil, bad(x402.ReasonInvalidPaymentRequirements, "the payload accepted other requirements than these")
	}
	return &req, nil
}

func payer(req *x402.VerifyRequest) string {
	var p struct {
		Authorization struct{ From string } `json:"authorization"`
	}
	_ = json.Unmarshal(req.PaymentPayload.Payload, &p)
	return p.Authorization.From
}

// verify checks a payment against its requirements: an exact transfer of
// the amount, or a voucher whose rise over what its channel has claimed
// and what this facilitator has settled covers the amount, on a channel
// that does not expire within the margin. For exact it returns the
// authorization; for a voucher, the voucher.
func (s *Server) verify(ctx context.Context, req *x402.VerifyRequest) (*bankpb.Authorization, *channelpb.Voucher, *paygate.PaymentError) {
	rq := &req.PaymentRequirements
	if perr := s.payee(ctx, rq.PayTo); perr != nil {
		return nil, nil, perr
	}
	switch rq.Scheme {
	case x402.SchemeExact:
		auth, perr := paygate.VerifyExact(ctx, s.cfg.Chain, s.cfg.ChainID, rq, req.PaymentPayload.Payload, time.Now())
		return auth, nil, perr
	case x402.SchemeBatch:
		amount, err := x402.Amount(rq.Amount)
		if err != nil {
			return nil, nil, bad(x402.ReasonInvalidPaymentRequirements, "amount: %v", err)
		}
		ch, v, perr := paygate.VerifyBatch(ctx, s.cfg.Chain, s.cfg.ChainID, rq, req.PaymentPayload.Payload)
		if perr != nil {
			return nil, nil, perr
		}
		st, err := s.cfg.Chain.Status(ctx)
		if err != nil {
			return nil, nil, &paygate.PaymentError{Status: http.StatusServiceUnavailable, Reason: x402.ReasonUnexpectedVerifyError, Msg: err.Error()}
		}
		if ch.ExpiresAt <= st.Height+s.cfg.ExpiryMargin {
			return nil, nil, bad(x402.ReasonChannelExpiring, "channel %d expires at height %d, within %d blocks of %d; open or extend a channel", ch.Id, ch.ExpiresAt, s.cfg.ExpiryMargin, st.Height)
		}
		if base := max(ch.Claimed, s.state.committed(ch.Id)); v.Cumulative < base+amount {
			return nil, nil, bad(x402.ReasonCumulativeMismatch, "voucher for %d on channel %d; %d is claimed or settled already, so a payment of %d needs a voucher for at least %d",
				v.Cumulative, ch.Id, base, amount, base+amount)
		}
		return nil, v, nil
	}
	return nil, nil, bad(x402.ReasonUnsupportedScheme, "scheme %q; this facilitator handles exact and batch-settlement", rq.Scheme)
}

// payee refuses payments to servers it does not settle for: it pays the
// fees of exact transfers, so not for anyone's.
func (s *Server) payee(ctx context.Context, payTo string) *paygate.PaymentError {
	if slices.Contains(s.cfg.Payees, payTo) {
		return nil
	}
	if _, err := client.Ask(ctx, s.cfg.Chain, providerpb.QueryProvider, &providerpb.QueryProviderRequest{Address: payTo}); err != nil {
		return bad(x402.ReasonRecipientMismatch, "this facilitator settles payments to registered providers and its own payees only, not to %s (start it with --payee to add one)", payTo)
	}
	return nil
}

// settle executes a payment once: an exact transfer on chain, or, for a
// voucher, a verified commitment the payee claims with its own key. The
// same payment settled again gets the first result back.
func (s *Server) settle(ctx context.Context, req *x402.VerifyRequest) (x402.SettlementResponse, *paygate.PaymentError) {
	id := paymentID(req)
	// One settlement at a time per payment, and per channel for vouchers
	// (two vouchers on one channel must not both use the same room).
	key := id
	if v, perr := paygate.ParseVoucher(req.PaymentPayload.Payload); perr == nil && req.PaymentRequirements.Scheme == x402.SchemeBatch {
		key = fmt.Sprintf("channel:%d", v.ChannelId)
	}
	unlock := s.state.lock(key)
	defer unlock()
	if res, ok := s.state.result(id); ok {
		return res, nil
	}
	network := x402.Network(s.cfg.ChainID)
	auth, v, perr := s.verify(ctx, req)
	if perr != nil {
		return x402.SettlementResponse{}, perr
	}
	var res x402.SettlementResponse
	if v != nil { // batch-settlement
		res = x402.SettlementResponse{Success: true, Network: network, Transaction: "", Amount: req.PaymentRequirements.Amount,
			Extra: map[string]any{"commitment": fmt.Sprintf("channel:%d:%d", v.ChannelId, v.Cumulative)}}
	} else {
		k := &keyring.Key{Name: "facilitator", Private: s.cfg.Key, Account: s.addr}
		tx, err := s.cfg.Chain.Submit(ctx, k, "x402 settle", &bankpb.MsgTransferWithAuthorization{Submitter: s.addr.String(), Authorization: auth})
		if err != nil {
			return x402.SettlementResponse{}, &paygate.PaymentError{Reason: x402.ReasonUnexpectedSettleError, Msg: err.Error()}
		}
		res = x402.SettlementResponse{Success: true, Payer: auth.From, Transaction: tx.Hash, Network: network, Amount: strconv.FormatUint(auth.Amount.Amount, 10)}
	}
	if err := s.state.record(id, v, res); err != nil {
		// Settled, but not recorded: the caller is told, and a retry
		// of the same payment would settle an exact one never twice
		// (the chain refuses its nonce) but a voucher twice.
		return x402.SettlementResponse{}, &paygate.PaymentError{Reason: x402.ReasonUnexpectedSettleError, Msg: err.Error()}
	}
	return res, nil
}

// paymentID names a payment by its requirements and its payload: the
// same signed voucher or authorization for the same requirements is the
// same payment; for other requirements (another payee, price or
// resource) it is another, which must verify by itself.
func paymentID(req *x402.VerifyRequest) string {
	rq, _ := json.Marshal(req.PaymentRequirements) // map keys sorted: deterministic
	h := sha256.New()
	h.Write(rq)
	h.Write([]byte{0})
	h.Write(req.PaymentPayload.Payload)
	return hex.EncodeToString(h.Sum(nil))
}
