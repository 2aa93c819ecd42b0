package chain_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/agoranet/agora/internal/chain/codes"
	"github.com/agoranet/agora/internal/chain/coin"
	"github.com/agoranet/agora/internal/chain/provider/providerpb"
	"github.com/agoranet/agora/internal/chain/staking/stakingpb"
)

// TestAnEndpointIsHTTPSOrLoopback: an https endpoint registers with its
// certificate's key, which the listing carries; plain http is taken on
// loopback only while allow_plain_http is 0, with a message that says why.
func TestAnEndpointIsHTTPSOrLoopback(t *testing.T) {
	h := newHarness(t, "")
	defer h.close()
	dave := address("dave").String()
	h.mustSend("dave", &stakingpb.MsgBond{Staker: dave, Amount: coin.New("uagr", 200_000_000)})
	pin := bytes.Repeat([]byte{7}, 32)
	reg := func(endpoint string, pin []byte) *providerpb.MsgRegisterProvider {
		return &providerpb.MsgRegisterProvider{Operator: dave, Endpoint: endpoint, TlsKeySha256: pin}
	}
	for what, c := range map[string]struct {
		m    *providerpb.MsgRegisterProvider
		code uint32
		says string
	}{
		"https without the certificate's key": {reg("https://p.example:8443", nil), codes.ErrInvalidRequest.Code, "tls_key_sha256"},
		"http with a certificate key":         {reg("http://127.0.0.1:8080", pin), codes.ErrInvalidRequest.Code, "not one"},
		"plain http on a network address":     {reg("http://p.example:8080", nil), codes.ErrInvalidRequest.Code, "allow_plain_http"},
		"plain http on a public IP":           {reg("http://203.0.113.5:8080", nil), codes.ErrInvalidRequest.Code, "allow_plain_http"},
		"plain http on 127.1.2.3":             {reg("http://127.1.2.3:8080", nil), 0, ""},
		// Were taken before: the rules read the scheme as written.
		"plain HTTP in capitals":    {reg("HTTP://203.0.113.5:8080", nil), codes.ErrInvalidRequest.Code, "lower case"},
		"HTTPS in capitals, no key": {reg("HTTPS://p.example:8443", nil), codes.ErrInvalidRequest.Code, "lower case"},
		"plain http on localhost":   {reg("http://localhost:8080", nil), 0, ""},
	} {
		r := h.send("dave", c.m)
		if r.Code != c.code || !strings.Contains(r.Log, c.says) {
			t.Errorf("%s: code %d %q; want code %d saying %q", what, r.Code, r.Log, c.code, c.says)
		}
	}
	if r := h.send("dave", reg("https://p.example:8443", pin)); r.Code != 0 {
		t.Fatalf("https with its key: %s", r.Log)
	}
	info, err := ask(h, providerpb.QueryProvider, &providerpb.QueryProviderRequest{Address: dave})
	if err != nil || !bytes.Equal(info.Provider.TlsKeySha256, pin) || info.Provider.Endpoint != "https://p.example:8443" {
		t.Errorf("the listing: %v, %v", info, err)
	}
}
