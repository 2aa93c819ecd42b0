package sig

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"
	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// TestAgreesWithTheStandardLibrary: valid, tampered and malformed
// signatures get the same verdict as from crypto/ed25519.
func TestAgreesWithTheStandardLibrary(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := []byte("a receipt")
	good := ed25519.Sign(priv, msg)
	bad := append([]byte(nil), good...)
	bad[3] ^= 1
	for _, c := range []struct {
		name     string
		pub, sig []byte
	}{{"valid", pub, good}, {"tampered", pub, bad}, {"short signature", pub, good[:63]}, {"short key", pub[:31], good}} {
		want := len(c.pub) == ed25519.PublicKeySize && len(c.sig) == ed25519.SignatureSize && ed25519.Verify(c.pub, msg, c.sig)
		for range 2 { // the second time with the key's expanded form kept
			if got := Verify(c.pub, msg, c.sig); got != want {
				t.Errorf("%s: Verify = %v, crypto/ed25519 says %v", c.name, got, want)
			}
		}
	}
}

// TestSignIsTheStandardSignature: ed25519 is deterministic, so Sign must
// give crypto/ed25519's bytes for every key and message.
func TestSignIsTheStandardSignature(t *testing.T) {
	for i := range 50 {
		_, priv, _ := ed25519.GenerateKey(rand.Reader)
		msg := make([]byte, i*7)
		rand.Read(msg)
		if got, want := Sign(priv, msg), ed25519.Sign(priv, msg); string(got) != string(want) {
			t.Fatalf("Sign = %x, crypto/ed25519 gives %x", got, want)
		}
	}
}

// BenchmarkVerifyExpanded is a key's verification before it is hot.
func BenchmarkVerifyExpanded(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 200)
	s := ed25519.Sign(priv, msg)
	Verify(pub, msg, s) // the first verification expands the key
	ex := known(pub).ex
	for b.Loop() {
		voi.VerifyExpandedWithOptions(ex, msg, s, stdlib)
	}
}

func BenchmarkVerifyWithTable(b *testing.B) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := make([]byte, 200)
	s := ed25519.Sign(priv, msg)
	for range hotAfter {
		Verify(pub, msg, s)
	}
	if known(pub).table.Load() == nil {
		b.Fatal("no table")
	}
	for b.Loop() {
		Verify(pub, msg, s)
	}
}

// TestTableAgreesWithTheStandardLibrary holds verifyWithTable, the path of
// a hot key, to crypto/ed25519's verdict on what an adversary can send:
// valid and tampered signatures, S at or above the group order, R not a
// canonical encoding, and keys of small or mixed order (some with
// non-canonical encodings), for which the cofactorless check accepts a
// signature only when the torsion part of [k]A vanishes.
func TestTableAgreesWithTheStandardLibrary(t *testing.T) {
	check := func(name string, pub, msg, sg []byte) {
		t.Helper()
		k := known(pub)
		if k == nil {
			return // not a point: never reaches the table
		}
		want := ed25519.Verify(pub, msg, sg)
		if got := verifyWithTable(pub, tableOf(k.ex), msg, sg); got != want {
			t.Errorf("%s: key %x sig %x: the table says %v, crypto/ed25519 %v", name, pub, sg, got, want)
		}
	}
	// Ordinary keys: valid, and tampered in every byte.
	for i := range 8 {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		msg := make([]byte, i*13)
		rand.Read(msg)
		good := ed25519.Sign(priv, msg)
		check("valid", pub, msg, good)
		for b := range 64 {
			bad := append([]byte(nil), good...)
			bad[b] ^= 1 << (b % 8)
			check("tampered", pub, msg, bad)
		}
		check("another message", pub, append(msg, 0), good)
		// S + l: the same point, but not the minimal encoding.
		check("S + l", pub, msg, append(good[:32:32], addOrder(good[32:])...))
	}
	// Keys made with a torsion part T: A = [a]B + T. A signature made as
	// if A were [a]B passes iff [k]T vanishes.
	accepted := 0
	for i := range 8 * 16 {
		var a, r scalar.Scalar
		a.SetRandom(rand.Reader)
		r.SetRandom(rand.Reader)
		var A, R curve.EdwardsPoint
		A.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, &a)
		A.Add(&A, curve.EIGHT_TORSION[i%8])
		R.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, &r)
		var pub, rb curve.CompressedEdwardsY
		pub.SetEdwardsPoint(&A)
		rb.SetEdwardsPoint(&R)
		msg := []byte{byte(i)}
		for _, enc := range encodings(pub) {
			var hram [64]byte
			h := sha512.New()
			h.Write(rb[:])
			h.Write(enc)
			h.Write(msg)
			h.Sum(hram[:0])
			var k, S scalar.Scalar
			k.SetBytesModOrderWide(hram[:])
			S.Mul(&k, &a)
			S.Add(&S, &r)
			var sb [32]byte
			S.ToBytes(sb[:])
			sg := append(rb[:], sb[:]...)
			if ed25519.Verify(enc, msg, sg) {
				accepted++
			}
			check("mixed order", enc, msg, sg)
		}
	}
	if accepted == 0 || accepted == 8*16 {
		t.Errorf("%d of the mixed-order signatures verify: the test does not tell the paths apart", accepted)
	}
	// Small-order keys (the torsion points themselves, and non-canonical
	// encodings of some): any R = [S]B is a valid signature by them.
	for i, T := range curve.EIGHT_TORSION {
		var S scalar.Scalar
		S.SetRandom(rand.Reader)
		var R curve.EdwardsPoint
		R.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, &S)
		var pub, rb curve.CompressedEdwardsY
		pub.SetEdwardsPoint(T)
		rb.SetEdwardsPoint(&R)
		var sb [32]byte
		S.ToBytes(sb[:])
		for _, enc := range encodings(pub) {
			check("small order", enc, []byte{byte(i)}, append(rb[:], sb[:]...))
		}
	}
	// R not canonical: y + p for the small y that have such an encoding.
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	good := ed25519.Sign(priv, nil)
	for y := range 19 {
		bad := append([]byte(nil), good...)
		copy(bad, nonCanonical(y))
		check("non-canonical R", pub, nil, bad)
	}
}

// encodings are a point's canonical encoding and, when its y is below 19,
// the non-canonical one (y + p, same sign bit).
func encodings(c curve.CompressedEdwardsY) [][]byte {
	out := [][]byte{append([]byte(nil), c[:]...)}
	y := c
	y[31] &= 0x7f
	small := y[0] < 19
	for _, b := range y[1:] {
		small = small && b == 0
	}
	if small {
		n := nonCanonical(int(y[0]))
		n[31] |= c[31] & 0x80
		out = append(out, n)
	}
	return out
}

// nonCanonical is y + p (p = 2^255 - 19) in 32 little-endian bytes.
func nonCanonical(y int) []byte {
	b := make([]byte, 32)
	b[0] = byte(0xed + y) // p's low byte is 0xed; y < 19 does not carry past it
	for i := 1; i < 31; i++ {
		b[i] = 0xff
	}
	b[31] = 0x7f
	return b
}

// addOrder is a little-endian 32-byte number plus the group order l.
func addOrder(s []byte) []byte {
	l := [32]byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 31: 0x10}
	out := make([]byte, 32)
	c := 0
	for i := range 32 {
		v := int(s[i]) + int(l[i]) + c
		out[i], c = byte(v), v>>8
	}
	return out
}

// TestHotKeysUseTheTable: a key that has verified hotAfter signatures
// gets its table and still agrees.
func TestHotKeysUseTheTable(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := []byte("a voucher")
	good := ed25519.Sign(priv, msg)
	for range hotAfter {
		if !Verify(pub, msg, good) {
			t.Fatal("a valid signature failed")
		}
	}
	if known(pub).table.Load() == nil {
		t.Fatal("a hot key has no table")
	}
	bad := append([]byte(nil), good...)
	bad[40] ^= 4
	if !Verify(pub, msg, good) || Verify(pub, msg, bad) || Verify(pub, []byte("another"), good) {
		t.Error("a hot key's verdicts are wrong")
	}
}

// TestHotKeysOutliveAFloodOfNewKeys: a forged signature from a new key
// does not enter the cache, and a flood of valid signatures from more new
// keys than the cache holds does not cost a busy hot key its table (found
// by review: a full cache started again empty, so anyone could strip the
// busy keys of their tables with cheap fresh keys).
func TestHotKeysOutliveAFloodOfNewKeys(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	msg := []byte("a voucher")
	good := ed25519.Sign(priv, msg)
	for range hotAfter {
		Verify(pub, msg, good)
	}
	if k := known(pub); k == nil || k.table.Load() == nil {
		t.Fatal("a hot key has no table")
	}
	forger, _, _ := ed25519.GenerateKey(rand.Reader)
	if Verify(forger, msg, good) || known(forger) != nil {
		t.Error("a key with only a forged signature entered the cache")
	}
	for i := range keysMax + 10 {
		p, k, _ := ed25519.GenerateKey(rand.Reader)
		if !Verify(p, msg, ed25519.Sign(k, msg)) {
			t.Fatal("a valid signature failed")
		}
		if i%1000 == 0 {
			Verify(pub, msg, good) // the hot key stays busy
		}
	}
	if k := known(pub); k == nil || k.table.Load() == nil {
		t.Error("the busy hot key lost its table to a flood of new keys")
	}
	if !Verify(pub, msg, good) {
		t.Error("the hot key's signature fails")
	}
}

// TestAnIdleTableMakesWayForANewlyHotKey: once every table is taken, a key
// that gets busy takes the table of one that has fallen idle, and a key
// kept busy keeps its own (found by review: the first tablesMax hot keys
// held the tables for ever).
func TestAnIdleTableMakesWayForANewlyHotKey(t *testing.T) {
	msg := []byte("a voucher")
	hot := func() (ed25519.PublicKey, []byte) {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		s := ed25519.Sign(priv, msg)
		for range hotAfter {
			Verify(pub, msg, s)
		}
		return pub, s
	}
	busy, busySig := hot()
	for range tablesMax {
		hot()
	}
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	s := ed25519.Sign(priv, msg)
	for range 3 * hotAfter {
		Verify(pub, msg, s)
		Verify(busy, msg, busySig)
	}
	if k := known(pub); k == nil || k.table.Load() == nil {
		t.Error("a newly hot key got no table while idle ones held them all")
	}
	if k := known(busy); k == nil || k.table.Load() == nil {
		t.Error("a busy key lost its table")
	}
}
