// Package tx encodes, signs and decodes Agora transactions.
//
// A Tx carries its Body as raw bytes and an ed25519 signature over
// SignBytes(body). Checking a signature never re-encodes anything, so there
// is exactly one byte string each signer commits to.
package tx

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/agoranet/agora/internal/chain/addr"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/module"
	"github.com/agoranet/agora/internal/sig"
)

// Domain separates tx signatures from every other thing an Agora key signs
// (vouchers, receipts), so no signature can be replayed as another kind.
const Domain = "agora/tx/v1\x00"

// MaxBytes is the largest encoded tx the chain accepts.
const MaxBytes = 64 << 10

// SignBytes returns what the signer signs for a marshalled body.
func SignBytes(body []byte) []byte {
	out := make([]byte, 0, len(Domain)+len(body))
	out = append(out, Domain...)
	return append(out, body...)
}

// Hash is the tx hash CometBFT uses: sha256 of the encoded tx.
func Hash(raw []byte) [32]byte { return sha256.Sum256(raw) }

var deterministic = proto.MarshalOptions{Deterministic: true}

// Header is what a tx says besides its messages.
type Header struct {
	ChainID  string
	Sequence uint64
	// GasLimit is the most gas the tx may use; Fee pays for all of it.
	GasLimit uint64
	Fee      *coin.Coin
	Memo     string
	// Signer is the signing account when the key does not derive it (the
	// account rotated its key); empty for the key's own address.
	Signer string
}

// Sign builds a signed, encoded tx from msgs.
func Sign(key ed25519.PrivateKey, h Header, msgs ...module.Msg) ([]byte, error) {
	body := &Body{
		ChainId:   h.ChainID,
		PublicKey: key.Public().(ed25519.PublicKey),
		Sequence:  h.Sequence,
		Fee:       h.Fee,
		Memo:      h.Memo,
		GasLimit:  h.GasLimit,
		Signer:    h.Signer,
	}
	if h.Signer == addr.FromPubKey(body.PublicKey).String() {
		body.Signer = "" // the canonical form, and a smaller tx
	}
	for _, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			return nil, fmt.Errorf("tx: pack %T: %w", m, err)
		}
		body.Msgs = append(body.Msgs, a)
	}
	bb, err := deterministic.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("tx: marshal body: %w", err)
	}
	return deterministic.Marshal(&Tx{Body: bb, Signature: sig.Sign(key, SignBytes(bb))})
}

// Decoded is a tx whose encoding has been checked; Verify checks its
// signature, and auth.Admit that its key is Signer's.
type Decoded struct {
	Body      *Body
	RawBody   []byte
	Signature []byte
	Msgs      []module.Msg
	Signer    addr.Address
	// Size is the encoded tx's length in bytes, which gas charges for.
	Size int
}

// Resolver returns a new empty message for a type URL the chain handles.
type Resolver func(typeURL string) (module.Msg, bool)

// Decode parses raw and resolves its messages. It does not check the
// signature (see Verify) and reads no state: chain-id, sequence and fee are checked by the auth module.
func Decode(raw []byte, resolve Resolver) (*Decoded, error) {
	if len(raw) > MaxBytes {
		return nil, fmt.Errorf("tx: %d bytes, limit %d: %w", len(raw), MaxBytes, codes.ErrTxTooLarge)
	}
	var t Tx
	if err := proto.Unmarshal(raw, &t); err != nil {
		return nil, fmt.Errorf("tx: not a protobuf agora.tx.v1.Tx: %w", codes.ErrTxDecode)
	}
	var body Body
	if err := proto.Unmarshal(t.Body, &body); err != nil {
		return nil, fmt.Errorf("tx: body is not a protobuf agora.tx.v1.Body: %w", codes.ErrTxDecode)
	}
	if len(body.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("tx: public key has %d bytes, want %d: %w", len(body.PublicKey), ed25519.PublicKeySize, codes.ErrTxDecode)
	}
	if len(body.Msgs) == 0 {
		return nil, fmt.Errorf("tx: no messages: %w", codes.ErrTxDecode)
	}
	d := &Decoded{Body: &body, RawBody: t.Body, Signature: t.Signature, Signer: addr.FromPubKey(body.PublicKey), Size: len(raw), Msgs: make([]module.Msg, 0, len(body.Msgs))}
	if body.Signer != "" {
		// Whether the key is this account's is a question for the state,
		// which auth.Admit asks.
		a, err := addr.Parse(body.Signer)
		if err != nil || a.String() != body.Signer {
			return nil, fmt.Errorf("tx: signer %q is not a canonical address: %w", body.Signer, codes.ErrTxDecode)
		}
		if a == d.Signer { // one encoding per tx: the key's own address is left out
			return nil, fmt.Errorf("tx: signer is the key's own address; leave it empty: %w", codes.ErrTxDecode)
		}
		d.Signer = a
	}
	signer := d.Signer.String()
	for i, a := range body.Msgs {
		m, ok := resolve(a.TypeUrl)
		if !ok {
			return nil, fmt.Errorf("tx: message %d has type %q, which this chain does not handle: %w", i, a.TypeUrl, codes.ErrUnknownMsg)
		}
		if err := proto.Unmarshal(a.Value, m); err != nil {
			return nil, fmt.Errorf("tx: message %d is not a valid %s: %w", i, a.TypeUrl, codes.ErrTxDecode)
		}
		if err := m.ValidateBasic(); err != nil {
			return nil, fmt.Errorf("tx: message %d (%s): %w", i, a.TypeUrl, err)
		}
		if m.Signer() != signer {
			return nil, fmt.Errorf("tx: message %d must be signed by %s, but the tx is signed by %s: %w", i, m.Signer(), signer, codes.ErrUnauthorized)
		}
		d.Msgs = append(d.Msgs, m)
	}
	return d, nil
}

// TypeURL is the Any type URL of a message.
func TypeURL(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}

// Verify checks the signature. Decode leaves it to the caller, which may
// know the tx was verified before (the app remembers what CheckTx checked).
func (d *Decoded) Verify() error {
	if !sig.Verify(d.Body.PublicKey, SignBytes(d.RawBody), d.Signature) {
		return fmt.Errorf("tx: signature does not match the body and public key: %w", codes.ErrSignature)
	}
	return nil
}
