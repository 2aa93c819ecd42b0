package object

import (
	"crypto/sha256"

	"github.com/agoranet/agora/internal/chain/storage/storagepb"
)

// A piece is committed by the RFC 6962 Merkle tree over its leaves
// (sha256; a leaf hashed with a 0x00 prefix, an inner node with 0x01; a
// tree of n leaves split at the largest power of two below n), the tree
// CometBFT's crypto/merkle and the receipts' roots use, so that the chain
// checks a storage proof with the code it checks receipts with. Paths list
// the siblings from the leaf's up to the root's child (CometBFT's aunts).

func nodeHash(l, r []byte) []byte { return storagepb.NodeHash(l, r) }

func split(n int) int { return storagepb.Split(n) }

// leaves cuts data into leafSize-byte leaves (the last may be short; a
// piece never has one, its size being a multiple of the leaf size).
func leaves(data []byte, leafSize int) [][]byte {
	var ls [][]byte
	for len(data) > leafSize {
		ls, data = append(ls, data[:leafSize]), data[leafSize:]
	}
	return append(ls, data)
}

// treeRoot is the root over hashed leaves.
func treeRoot(hs [][]byte) []byte {
	if len(hs) == 1 {
		return hs[0]
	}
	k := split(len(hs))
	return nodeHash(treeRoot(hs[:k]), treeRoot(hs[k:]))
}

// hashLeaves hashes each leaf of data with one hasher, into one array.
func hashLeaves(data []byte, leafSize int) [][]byte {
	ls := leaves(data, leafSize)
	hs := make([][]byte, len(ls))
	all := make([]byte, 0, len(ls)*sha256.Size)
	h := sha256.New()
	for i, l := range ls {
		h.Reset()
		h.Write([]byte{0})
		h.Write(l)
		all = h.Sum(all)
		hs[i] = all[i*sha256.Size : (i+1)*sha256.Size : (i+1)*sha256.Size]
	}
	return hs
}

// Root is the Merkle root of data's leafSize-byte leaves.
func Root(data []byte, leafSize int) []byte {
	return treeRoot(hashLeaves(data, leafSize))
}

// Prove returns leaf index of data (its bytes) and its path to Root(data,
// leafSize), or nil, nil for an index out of range.
func Prove(data []byte, leafSize, index int) (leaf []byte, path [][]byte) {
	ls := leaves(data, leafSize)
	if index < 0 || index >= len(ls) {
		return nil, nil
	}
	return ls[index], prove(hashLeaves(data, leafSize), index)
}

// prove is the path of hs[index], bottom up.
func prove(hs [][]byte, index int) [][]byte {
	if len(hs) == 1 {
		return nil
	}
	k := split(len(hs))
	if index < k {
		return append(prove(hs[:k], index), treeRoot(hs[k:]))
	}
	return append(prove(hs[k:], index-k), treeRoot(hs[:k]))
}

// VerifyLeaf reports whether leaf is leaf index of count under root, by
// path.
func VerifyLeaf(root, leaf []byte, index, count int, path [][]byte) bool {
	return storagepb.VerifyLeaf(root, leaf, index, count, path)
}
