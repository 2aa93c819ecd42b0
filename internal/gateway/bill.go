package gateway

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/agoranet/agora/internal/ledger"
	"github.com/agoranet/agora/internal/openai"
	"github.com/agoranet/agora/internal/paygate"
	"github.com/agoranet/agora/x402"
)

// bill is how one request is paid: from an API key's prepaid balance, or
// with x402 by the client itself (the same gate as a provider's). Either
// way the client pays the answer's actual price, and nothing for an answer
// it did not get.
type bill struct {
	s       *Server
	most    uint64
	res     *ledger.Reservation // API key
	pay     *paygate.Payment    // x402
	charged uint64
	settled bool
}

// bill takes the request's payment or answers the refusal itself (nil).
func (s *Server) bill(w http.ResponseWriter, r *http.Request, most uint64) *bill {
	b := &bill{s: s, most: most}
	if r.Header.Get("Authorization") == "" && s.gate != nil {
		price := paygate.Price{Denom: s.cfg.Denom, Max: most}
		pay, perr := s.gate.Begin(r, price)
		if perr != nil {
			s.gate.Write(w, r, price, perr)
			return nil
		}
		b.pay = pay
		return b
	}
	key, err := s.apiKey(r)
	if err != nil {
		openai.WriteError(w, err)
		return nil
	}
	b.res, err = s.leases.Reserve(r.Context(), key, most)
	switch {
	case errors.Is(err, ledger.ErrUnknownKey):
		openai.WriteError(w, openai.Errorf(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "this API key is not known to the gateway; create one with `agora gateway key create`"))
		return nil
	case errors.Is(err, ledger.ErrBalance):
		// OpenAI's answer to an account out of credit: a 429 that no
		// retry will cure, saying how to add credit.
		openai.WriteError(w, openai.Errorf(http.StatusTooManyRequests, "insufficient_quota", "insufficient_quota",
			"%s; top the key up with `agora gateway key topup ID AMOUNT` (GET /v1/key shows its id and balance)", strings.TrimPrefix(err.Error(), "ledger: ")))
		return nil
	case err != nil:
		s.log.Error("gateway: the API-key ledger failed", "err", err)
		openai.WriteError(w, openai.Errorf(http.StatusServiceUnavailable, "server_error", "ledger_unavailable", "the gateway cannot reach its API-key ledger; retry shortly"))
		return nil
	}
	return b
}

// durable waits until an x402 voucher is on disk: nothing of the answer
// may go out before.
func (b *bill) durable() error { return b.pay.Durable() }

// settle charges the answer's price and adds what the client is owed in
// headers (PAYMENT-RESPONSE for x402).
func (b *bill) settle(h http.Header, actual uint64, receiptHash []byte) error {
	b.charged, b.settled = min(actual, b.most), true
	if b.pay == nil {
		return nil // the key is debited at close
	}
	pr, err := b.pay.Finish(actual, receiptHash)
	if err != nil {
		return err
	}
	h.Set(x402.HeaderResponse, pr)
	return nil
}

// ref names the client's payment in the gateway's receipt: the x402
// payment, or the API key's reservation.
func (b *bill) ref() string {
	if b.pay != nil {
		return b.pay.Ref()
	}
	return "key:" + b.res.KeyID
}

// close releases what was reserved: an unanswered request costs nothing.
func (b *bill) close(log *slog.Logger) {
	if b.pay != nil {
		b.pay.Abort()
		return
	}
	charged := uint64(0)
	if b.settled {
		charged = b.charged
	}
	// In memory, within the key's lease: the ledger writes debits in
	// batches (see ledger.Leases).
	if err := b.s.leases.Settle(b.res, charged); err != nil {
		log.Error("gateway: record a charge", "err", err)
	}
}
