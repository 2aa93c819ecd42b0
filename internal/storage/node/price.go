package node

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/agoranet/agora/internal/chain/storage/storagepb"
	"github.com/agoranet/agora/internal/paygate"
	"github.com/agoranet/agora/x402"
)

// Price is what a node charges readers for the bytes it serves: PerGiB in
// Denom, over x402 with the same gate providers take payment with (a
// channel voucher checked locally, recorded before the bytes go out,
// claimed on chain in batches). It is the price the node registered on
// chain, so readers can check it before they pay.
type Price struct {
	Gate   *paygate.Gate
	Denom  string
	PerGiB uint64
}

func (p *Price) free() bool { return p == nil || p.Gate == nil || p.PerGiB == 0 }

// cost is what n bytes cost, rounded up to the unit.
func (p *Price) cost(n uint64) (uint64, error) {
	c, ok := storagepb.Per(n, p.PerGiB)
	if !ok {
		return 0, httpError{http.StatusRequestedRangeNotSatisfiable, fmt.Sprintf("%d bytes at %d%s a GiB cost more than a payment can carry; ask for a smaller range", n, p.PerGiB, p.Denom)}
	}
	return c, nil
}

// begin takes the payment for n bytes of what (a piece's root, an object's
// CID) from r, writing the refusal itself when there is none (false).
func (p *Price) begin(w http.ResponseWriter, r *http.Request, n uint64) (*paygate.Payment, uint64, bool) {
	c, err := p.cost(n)
	if err != nil {
		fail(w, err)
		return nil, 0, false
	}
	price := paygate.Price{Denom: p.Denom, Max: c}
	pay, perr := p.Gate.Begin(r, price)
	if perr != nil {
		p.Gate.Write(w, r, price, perr)
		return nil, 0, false
	}
	// Nothing goes out before the voucher is on disk.
	if err := pay.Durable(); err != nil {
		pay.Abort()
		fail(w, httpError{http.StatusServiceUnavailable, fmt.Sprintf("this node cannot record vouchers now: %v; retry, or read from another node", err)})
		return nil, 0, false
	}
	return pay, c, true
}

// receiptHash names what a payment bought, for the claim that anchors it:
// the bytes of what, from offset, and the payment.
func receiptHash(what []byte, offset, n uint64, pay *paygate.Payment) []byte {
	h := sha256.New()
	h.Write([]byte("agora/storage/v1/retrieval\x00"))
	h.Write(what)
	h.Write(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, offset), n))
	h.Write([]byte(pay.Ref()))
	return h.Sum(nil)
}

// byteRange reads a Range header for a body of size bytes: the offset and
// length it asks for, the whole body without one. A paid read takes one
// range, so that what it is charged for is what it gets.
func byteRange(h string, size uint64) (offset, n uint64, err error) {
	if h == "" {
		return 0, size, nil
	}
	bad := httpError{http.StatusRequestedRangeNotSatisfiable, fmt.Sprintf("Range %q: this node serves one range of a %d-byte piece, like bytes=0-1023, bytes=1024- or bytes=-512", h, size)}
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, 0, bad
	}
	first, last, ok := strings.Cut(strings.TrimSpace(spec), "-")
	if !ok {
		return 0, 0, bad
	}
	if first == "" { // the last bytes
		k, err := strconv.ParseUint(last, 10, 64)
		if err != nil || k == 0 {
			return 0, 0, bad
		}
		k = min(k, size)
		return size - k, k, nil
	}
	a, err := strconv.ParseUint(first, 10, 64)
	if err != nil || a >= size {
		return 0, 0, bad
	}
	b := size - 1
	if last != "" {
		if b, err = strconv.ParseUint(last, 10, 64); err != nil || b < a {
			return 0, 0, bad
		}
		b = min(b, size-1)
	}
	return a, b - a + 1, nil
}

// settleBefore charges a read whose bytes are at hand (a piece on this
// node's disk) before they go out: the charge travels in the header, as a
// provider's for a whole answer.
func settleBefore(w http.ResponseWriter, pay *paygate.Payment, c uint64, hash []byte) bool {
	resp, err := pay.Finish(c, hash)
	if err != nil {
		fail(w, httpError{http.StatusServiceUnavailable, fmt.Sprintf("this node cannot record the charge now: %v; the read is not served", err)})
		return false
	}
	w.Header().Set(x402.HeaderResponse, resp)
	return true
}
