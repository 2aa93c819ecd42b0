// Package facilitator is an x402 facilitator for Agora: POST /verify, POST
// /settle and GET /supported, as the x402 v2 spec describes them, for the
// exact and batch-settlement schemes on "cosmos:<chain-id>". It lets a
// server take x402 payments without talking to the chain itself.
package facilitator

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/bank/bankpb"
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
	// Key submits exact settlements and pays their fees.
	Key     ed25519.PrivateKey
	Chain   *client.Client
	ChainID string
	// Logger receives the daemon's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a facilitator's defaults.
func DefaultConfig() Config { return Config{Listen: "127.0.0.1:8402"} }

// Validate checks the config.
func (c Config) Validate() error {
	if len(c.Key) != ed25519.PrivateKeySize || c.Chain == nil || c.ChainID == "" {
		return errors.New("facilitator: need a key, a chain client and a chain-id")
	}
	return nil
}

// Server is a running facilitator.
type Server struct {
	cfg  Config
	addr addr.Address
	http *httpserve.Server
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
	s := &Server{cfg: cfg, addr: addr.FromPubKey(cfg.Key.Public().(ed25519.PublicKey))}
	var err error
	if s.http, err = httpserve.Listen(cfg.Listen, s.Handler(), cfg.Logger); err != nil {
		return nil, fmt.Errorf("facilitator: %w", err)
	}
	return s, nil
}

// URL is where it serves.
func (s *Server) URL() string { return s.http.URL() }

// Shutdown stops serving.
func (s *Server) Shutdown(ctx context.Context) error {
	return s.http.Shutdown(ctx)
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
			_, perr = s.verify(r.Context(), req)
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

// verify checks a payment; for exact it returns the authorization.
func (s *Server) verify(ctx context.Context, req *x402.VerifyRequest) (*bankpb.Authorization, *paygate.PaymentError) {
	rq := &req.PaymentRequirements
	switch rq.Scheme {
	case x402.SchemeExact:
		return paygate.VerifyExact(ctx, s.cfg.Chain, s.cfg.ChainID, rq, req.PaymentPayload.Payload, time.Now())
	case x402.SchemeBatch:
		_, _, perr := paygate.VerifyBatch(ctx, s.cfg.Chain, s.cfg.ChainID, rq, req.PaymentPayload.Payload)
		return nil, perr
	}
	return nil, bad(x402.ReasonUnsupportedScheme, "scheme %q; this facilitator handles exact and batch-settlement", rq.Scheme)
}

// settle executes a payment: an exact transfer on chain, or, for a
// voucher, a verified commitment the payee claims with its own key.
func (s *Server) settle(ctx context.Context, req *x402.VerifyRequest) (x402.SettlementResponse, *paygate.PaymentError) {
	network := x402.Network(s.cfg.ChainID)
	auth, perr := s.verify(ctx, req)
	if perr != nil {
		return x402.SettlementResponse{}, perr
	}
	if auth == nil { // batch-settlement
		var bp x402.BatchPayload
		_ = json.Unmarshal(req.PaymentPayload.Payload, &bp)
		return x402.SettlementResponse{Success: true, Network: network, Transaction: "",
			Extra: map[string]any{"commitment": "channel:" + bp.Voucher.ChannelID + ":" + bp.Voucher.MaxClaimableAmount}}, nil
	}
	k := &keyring.Key{Name: "facilitator", Private: s.cfg.Key}
	res, err := s.cfg.Chain.Submit(ctx, k, "x402 settle", &bankpb.MsgTransferWithAuthorization{Submitter: s.addr.String(), Authorization: auth})
	if err != nil {
		return x402.SettlementResponse{}, &paygate.PaymentError{Reason: x402.ReasonUnexpectedSettleError, Msg: err.Error()}
	}
	return x402.SettlementResponse{Success: true, Payer: auth.From, Transaction: res.Hash, Network: network, Amount: strconv.FormatUint(auth.Amount.Amount, 10)}, nil
}
