package x402

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// The headers of every paid answer (PAYMENT-SIGNATURE and its voucher,
// PAYMENT-RESPONSE) are read with valyala/fastjson: encoding/json took
// 10-20 µs for each, a tenth of what a payment costs in all, where this
// takes 1-2. The readers keep encoding/json's rules: a key matches a
// field exactly or else ignoring case, the last of duplicate keys wins,
// null leaves a field as it is (but sets a pointer or a map to nil), a
// value of the wrong type is an error,
// unknown keys are skipped, invalid UTF-8 becomes U+FFFD. FuzzDecodeJSON
// holds them to encoding/json's results.

var parsers fastjson.ParserPool

var errType = errors.New("a value of the wrong type")

// decodeFast reads b into v if v is one of the hot types, and says so.
// Some JSON is left to encoding/json: with \u escapes (fastjson keeps a
// lone surrogate's escape as text, where encoding/json makes it U+FFFD)
// or control bytes (fastjson's validator takes some in keys), neither of
// which Agora writes (but for a URL with an & or a < in it), and JSON
// that fastjson's validator refuses or its parser cannot take, for
// encoding/json's verdict.
func decodeFast(b []byte, v any) (bool, error) {
	var read func(*fastjson.Value) error
	switch v := v.(type) {
	case *PaymentPayload:
		read = func(j *fastjson.Value) error { return readPaymentPayload(j, v) }
	case *SettlementResponse:
		read = func(j *fastjson.Value) error { return readSettlement(j, v) }
	case *BatchPayload:
		read = func(j *fastjson.Value) error { return readBatchPayload(j, v) }
	case *BatchSettlement:
		read = func(j *fastjson.Value) error { return readBatchSettlement(j, v) }
	default:
		return false, nil
	}
	if !plain(b) || fastjson.ValidateBytes(b) != nil {
		return false, nil
	}
	p := parsers.Get()
	defer parsers.Put(p)
	j, err := p.ParseBytes(b)
	if err != nil { // deeper than fastjson parses, say: encoding/json decides
		return false, nil
	}
	return true, read(j)
}

func readPaymentPayload(j *fastjson.Value, p *PaymentPayload) error {
	return members(j, func(k string, v *fastjson.Value) error {
		switch {
		case is(k, "x402Version"):
			return readInt(v, &p.X402Version)
		case is(k, "resource"):
			if v.Type() == fastjson.TypeNull {
				p.Resource = nil // as encoding/json sets a pointer
				return nil
			}
			if p.Resource == nil {
				p.Resource = &ResourceInfo{}
			}
			return readResource(v, p.Resource)
		case is(k, "accepted"):
			return readRequirements(v, &p.Accepted)
		case is(k, "payload"):
			p.Payload = v.MarshalTo(nil)
		case is(k, "extensions"):
			return readMap(v, &p.Extensions)
		}
		return nil
	})
}

func readResource(j *fastjson.Value, r *ResourceInfo) error {
	return members(j, func(k string, v *fastjson.Value) error {
		switch {
		case is(k, "url"):
			return readString(v, &r.URL)
		case is(k, "description"):
			return readString(v, &r.Description)
		case is(k, "mimeType"):
			return readString(v, &r.MimeType)
		}
		return nil
	})
}

func readRequirements(j *fastjson.Value, r *PaymentRequirements) error {
	return members(j, func(k string, v *fastjson.Value) error {
		switch {
		case is(k, "scheme"):
			return readString(v, &r.Scheme)
		case is(k, "network"):
			return readString(v, &r.Network)
		case is(k, "amount"):
			return readString(v, &r.Amount)
		case is(k, "asset"):
			return readString(v, &r.Asset)
		case is(k, "payTo"):
			return readString(v, &r.PayTo)
		case is(k, "maxTimeoutSeconds"):
			return readInt(v, &r.MaxTimeoutSeconds)
		case is(k, "extra"):
			return readMap(v, &r.Extra)
		}
		return nil
	})
}

func readSettlement(j *fastjson.Value, s *SettlementResponse) error {
	return members(j, func(k string, v *fastjson.Value) error {
		switch {
		case is(k, "success"):
			return readBool(v, &s.Success)
		case is(k, "errorReason"):
			return readString(v, &s.ErrorReason)
		case is(k, "errorMessage"):
			return readString(v, &s.ErrorMessage)
		case is(k, "payer"):
			return readString(v, &s.Payer)
		case is(k, "transaction"):
			return readString(v, &s.Transaction)
		case is(k, "network"):
			return readString(v, &s.Network)
		case is(k, "amount"):
			return readString(v, &s.Amount)
		case is(k, "extra"):
			return readMap(v, &s.Extra)
		}
		return nil
	})
}

func readBatchPayload(j *fastjson.Value, b *BatchPayload) error {
	return members(j, func(k string, v *fastjson.Value) error {
		switch {
		case is(k, "type"):
			return readString(v, &b.Type)
		case is(k, "voucher"):
			return members(v, func(k string, v *fastjson.Value) error {
				switch {
				case is(k, "channelId"):
					return readString(v, &b.Voucher.ChannelID)
				case is(k, "maxClaimableAmount"):
					return readString(v, &b.Voucher.MaxClaimableAmount)
				case is(k, "signature"):
					return readString(v, &b.Voucher.Signature)
				}
				return nil
			})
		}
		return nil
	})
}

func readBatchSettlement(j *fastjson.Value, b *BatchSettlement) error {
	return members(j, func(k string, v *fastjson.Value) error {
		switch {
		case is(k, "success"):
			return readBool(v, &b.Success)
		case is(k, "extra"):
			return members(v, func(k string, v *fastjson.Value) error {
				switch {
				case is(k, "chargedAmount"):
					return readString(v, &b.Extra.ChargedAmount)
				case is(k, "channelState"):
					c := &b.Extra.ChannelState
					return members(v, func(k string, v *fastjson.Value) error {
						switch {
						case is(k, "channelId"):
							return readString(v, &c.ChannelID)
						case is(k, "balance"):
							return readString(v, &c.Balance)
						case is(k, "totalClaimed"):
							return readString(v, &c.TotalClaimed)
						case is(k, "chargedCumulativeAmount"):
							return readString(v, &c.ChargedCumulativeAmount)
						}
						return nil
					})
				}
				return nil
			})
		}
		return nil
	})
}

// plain tells whether b has no control byte and no \u escape.
func plain(b []byte) bool {
	for i, c := range b {
		if c < 0x20 || c == '\\' && i+1 < len(b) && b[i+1] == 'u' {
			return false
		}
	}
	return true
}

// members calls f on each member of object j, in order (null is no
// members, anything else an error).
func members(j *fastjson.Value, f func(k string, v *fastjson.Value) error) error {
	switch j.Type() {
	case fastjson.TypeNull:
		return nil
	case fastjson.TypeObject:
	default:
		return fmt.Errorf("%w: want an object", errType)
	}
	o, _ := j.Object()
	var err error
	o.Visit(func(k []byte, v *fastjson.Value) {
		if err == nil {
			err = f(text(k), v)
		}
	})
	return err
}

// is tells whether key k names field: exactly, or as encoding/json also
// takes it, ignoring case.
func is(k, field string) bool { return k == field || strings.EqualFold(k, field) }

func readString(v *fastjson.Value, dst *string) error {
	switch v.Type() {
	case fastjson.TypeNull:
		return nil
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		*dst = text(b)
		return nil
	}
	return fmt.Errorf("%w: want a string", errType)
}

func readInt(v *fastjson.Value, dst *int) error {
	switch v.Type() {
	case fastjson.TypeNull:
		return nil
	case fastjson.TypeNumber:
		n, err := strconv.ParseInt(string(v.MarshalTo(nil)), 10, 0)
		if err != nil {
			return fmt.Errorf("%w: want an integer", errType)
		}
		*dst = int(n)
		return nil
	}
	return fmt.Errorf("%w: want a number", errType)
}

func readBool(v *fastjson.Value, dst *bool) error {
	switch v.Type() {
	case fastjson.TypeNull:
		return nil
	case fastjson.TypeTrue, fastjson.TypeFalse:
		*dst = v.Type() == fastjson.TypeTrue
		return nil
	}
	return fmt.Errorf("%w: want true or false", errType)
}

// readMap reads an object into a map of any, as encoding/json does: into
// the map there is, made if nil; null sets it to nil.
func readMap(v *fastjson.Value, dst *map[string]any) error {
	if v.Type() == fastjson.TypeNull {
		*dst = nil
		return nil
	}
	if v.Type() != fastjson.TypeObject {
		return fmt.Errorf("%w: want an object", errType)
	}
	if *dst == nil {
		*dst = map[string]any{}
	}
	m := *dst
	return members(v, func(k string, v *fastjson.Value) error {
		x, err := anyOf(v)
		m[k] = x
		return err
	})
}

// anyOf is v as encoding/json makes an any of it.
func anyOf(v *fastjson.Value) (any, error) {
	switch v.Type() {
	case fastjson.TypeNull:
		return nil, nil
	case fastjson.TypeTrue:
		return true, nil
	case fastjson.TypeFalse:
		return false, nil
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return text(b), nil
	case fastjson.TypeNumber:
		f, err := strconv.ParseFloat(string(v.MarshalTo(nil)), 64)
		if err != nil {
			return nil, fmt.Errorf("%w: a number out of range", errType)
		}
		return f, nil
	case fastjson.TypeArray:
		items, _ := v.Array()
		out := make([]any, len(items))
		for i, it := range items {
			x, err := anyOf(it)
			if err != nil {
				return nil, err
			}
			out[i] = x
		}
		return out, nil
	}
	var m map[string]any
	err := readMap(v, &m)
	return m, err
}

// text is b as a string, each byte of invalid UTF-8 replaced by U+FFFD
// (encoding/json's rule).
func text(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		sb.WriteRune(r) // utf8.RuneError for an invalid byte
		b = b[n:]
	}
	return sb.String()
}
