package providerpb

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/agoranet/agora/internal/chain/bank/bankpb"
	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
)

// MaxRoyalties bounds the royalty recipients of one service.
const MaxRoyalties = 8

func IsModelID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !(s[i] >= '0' && s[i] <= '9' || s[i] >= 'a' && s[i] <= 'f') {
			return false
		}
	}
	return true
}

func checkText(field, s string, max int) error {
	if len(s) > max || !utf8.ValidString(s) || strings.ContainsAny(s, "\x00\n\r") {
		return fmt.Errorf("provider: %s must be at most %d bytes of one-line UTF-8: %w", field, max, codes.ErrInvalidRequest)
	}
	return nil
}

// ValidEndpoint checks a provider's API URL: http or https, a host, no
// credentials, query or fragment.
func ValidEndpoint(s string) error {
	u, err := url.Parse(s)
	// The scheme in lower case, as written: the https and plain-http
	// rules read it from the string.
	if err != nil || len(s) > 256 || (u.Scheme != "http" && u.Scheme != "https") || !strings.HasPrefix(s, u.Scheme+"://") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("provider: endpoint %q must be an http(s) URL like https://host:port (scheme in lower case), at most 256 bytes: %w", s, codes.ErrInvalidRequest)
	}
	return nil
}

// Loopback reports whether an endpoint's host is this machine's own
// (localhost, 127.0.0.0/8, ::1), where plain http crosses no network.
func Loopback(endpoint string) bool {
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" || h == "::1" {
		return true
	}
	// 127.0.0.0/8, as a dotted quad (no net: chain code does no I/O).
	parts := strings.Split(h, ".")
	if len(parts) != 4 || parts[0] != "127" {
		return false
	}
	for _, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || n > 255 || strconv.Itoa(n) != p {
			return false
		}
	}
	return true
}

func (m *MsgRegisterProvider) Signer() string { return m.Operator }

func (m *MsgRegisterProvider) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("operator", m.Operator); err != nil {
		return err
	}
	if err := ValidEndpoint(m.Endpoint); err != nil {
		return err
	}
	https := strings.HasPrefix(m.Endpoint, "https://")
	switch {
	case https && len(m.TlsKeySha256) != 32:
		return fmt.Errorf("provider: an https endpoint needs tls_key_sha256, the 32-byte sha256 of its certificate's public key, so that clients can tell they reached you (agora provider start --tls-cert registers it): %w", codes.ErrInvalidRequest)
	case !https && len(m.TlsKeySha256) != 0:
		return fmt.Errorf("provider: tls_key_sha256 is for an https endpoint, and %s is not one: %w", m.Endpoint, codes.ErrInvalidRequest)
	}
	if err := checkText("region", m.Region, 64); err != nil {
		return err
	}
	return checkText("hardware", m.Hardware, 256)
}

func (m *MsgRegisterService) Signer() string { return m.Operator }

func (m *MsgRegisterService) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("operator", m.Operator); err != nil {
		return err
	}
	if !IsModelID(m.ModelId) {
		return fmt.Errorf("provider: model id must be the 64 lower-case hex digits of the weights' sha256: %w", codes.ErrInvalidRequest)
	}
	if m.ModelName == "" {
		return fmt.Errorf("provider: model name is empty: %w", codes.ErrInvalidRequest)
	}
	if err := checkText("model name", m.ModelName, 128); err != nil {
		return err
	}
	if m.MaxConcurrency == 0 {
		return fmt.Errorf("provider: max concurrency must be at least 1: %w", codes.ErrInvalidRequest)
	}
	if len(m.Royalties) > MaxRoyalties {
		return fmt.Errorf("provider: %d royalty recipients, at most %d: %w", len(m.Royalties), MaxRoyalties, codes.ErrInvalidRequest)
	}
	var total uint32
	for i, r := range m.Royalties {
		if _, err := bankpb.ParseAddr(fmt.Sprintf("royalties[%d].recipient", i), r.Recipient); err != nil {
			return err
		}
		if r.Bps == 0 || r.Bps > 10_000 {
			return fmt.Errorf("provider: royalty %d of %d bps; want 1 to 10000: %w", i, r.Bps, codes.ErrInvalidRequest)
		}
		total += r.Bps
	}
	if total > 10_000 {
		return fmt.Errorf("provider: royalties add up to %d bps, over 100%%: %w", total, codes.ErrInvalidRequest)
	}
	for _, p := range []*coin.Coin{m.PricePerRequest, m.PricePer_1KTokens} {
		if p != nil && !coin.ValidDenom(p.Denom) {
			return fmt.Errorf("provider: price has a bad denom %q: %w", p.Denom, codes.ErrInvalidAmount)
		}
	}
	if m.PricePerRequest != nil && m.PricePer_1KTokens != nil && m.PricePerRequest.Denom != m.PricePer_1KTokens.Denom {
		return fmt.Errorf("provider: both prices must be in one denom: %w", codes.ErrInvalidAmount)
	}
	return nil
}

func (m *MsgRemoveService) Signer() string { return m.Operator }

func (m *MsgRemoveService) ValidateBasic() error {
	if _, err := bankpb.ParseAddr("operator", m.Operator); err != nil {
		return err
	}
	if !IsModelID(m.ModelId) {
		return fmt.Errorf("provider: model id must be 64 lower-case hex digits: %w", codes.ErrInvalidRequest)
	}
	return nil
}

func (m *MsgHeartbeat) Signer() string { return m.Operator }

func (m *MsgHeartbeat) ValidateBasic() error {
	_, err := bankpb.ParseAddr("operator", m.Operator)
	return err
}

func (m *MsgDeregister) Signer() string { return m.Operator }

func (m *MsgDeregister) ValidateBasic() error {
	_, err := bankpb.ParseAddr("operator", m.Operator)
	return err
}

// ValidModelID checks a model id: 64 lower-case hex digits.
func ValidModelID(s string) error {
	if !IsModelID(s) {
		return fmt.Errorf("provider: model id %q must be 64 lower-case hex digits: %w", s, codes.ErrInvalidRequest)
	}
	return nil
}
