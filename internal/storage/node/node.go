// Package node is a storage node's HTTP API over its piecestore: pieces
// are put and fetched by their Merkle roots, manifests by their objects'
// CIDs, and a challenge for a leaf of a piece is answered with the leaf
// and its path.
//
//	PUT /storage/v1/pieces/{root}?leaf_size=N   a piece; refused unless it has that root
//	GET /storage/v1/pieces/{root}               its bytes (Range requests too)
//	PUT /storage/v1/manifests/{cid}             a manifest; refused unless it hashes to cid
//	GET /storage/v1/manifests/{cid}
//	GET /storage/v1/proofs/{root}?leaf_size=N&leaf=I   {"leaf": base64, "path": [base64, ...]}
//	GET /storage/{cid}                          the whole object, fetched from the nodes its deal placed it on
//
// A node with a Price charges for the bytes of pieces and objects it
// serves, per byte over x402 (price.go); challenges and manifests are
// free.
package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/agoranet/agora/internal/httpserve"
	"github.com/agoranet/agora/internal/storage/object"
	"github.com/agoranet/agora/internal/storage/piecestore"
	"github.com/agoranet/agora/x402"
)

// Size limits of what a node reads from a request.
const (
	MaxPieceBytes    = object.MaxPieceSize
	MaxManifestBytes = object.MaxManifestBytes
)

// ServeOptions are httpserve's defaults with bodies as large as a piece
// or a manifest can be under their paths.
func ServeOptions() httpserve.Options {
	o := httpserve.DefaultOptions()
	o.BodyLimits = map[string]int64{"/storage/v1/pieces/": MaxPieceBytes, "/storage/v1/manifests/": MaxManifestBytes}
	return o
}

// Objects opens a whole object for GET /storage/{cid}: its size, and a
// function that writes it, checked segment by segment, to w. An object
// it does not know is an error wrapping ErrNoObject.
type Objects func(ctx context.Context, id cid.Cid) (size uint64, write func(w io.Writer) error, err error)

// maxObjectGets is how many whole objects a node serves at once, and
// objectStall how long one write to a reader may take.
const (
	maxObjectGets = 4
	objectStall   = 30 * time.Second
)

// deadlineWriter gives every write to a reader objectStall to finish.
type deadlineWriter struct {
	w  io.Writer
	rc *http.ResponseController
}

func (d *deadlineWriter) Write(b []byte) (int, error) {
	d.rc.SetWriteDeadline(time.Now().Add(objectStall))
	return d.w.Write(b)
}

// ErrNoObject is the error of an object no deal stores.
var ErrNoObject = errors.New("storage: no such object")

// Options are what a node serves besides its pieces.
type Options struct {
	// Objects serves whole objects by CID; nil: not served.
	Objects Objects
	// Price is charged for reads; nil: they are free.
	Price *Price
}

// paidRead tells whether r is a read the node charges for: a GET (a HEAD
// sends no bytes) on a node with a price.
func (o Options) paidRead(r *http.Request) bool {
	return !o.Price.free() && r.Method == http.MethodGet
}

// Handler serves store, with what o adds.
func Handler(store *piecestore.Store, o Options) http.Handler {
	mux := http.NewServeMux()
	if objects := o.Objects; objects != nil {
		// A whole object is fetched from other nodes and held a few
		// segments at a time while it is written: a few at once, and a
		// reader too slow to take a segment in objectStall is cut off.
		busy := make(chan struct{}, maxObjectGets)
		mux.HandleFunc("GET /storage/{cid}", func(w http.ResponseWriter, r *http.Request) {
			id, err := cidOf(r)
			if err != nil {
				fail(w, err)
				return
			}
			select {
			case busy <- struct{}{}:
				defer func() { <-busy }()
			default:
				w.Header().Set("Retry-After", "1")
				fail(w, httpError{http.StatusServiceUnavailable, fmt.Sprintf("this node is serving %d whole objects already; try again, or another node (any serves any object)", maxObjectGets)})
				return
			}
			size, write, err := objects(r.Context(), id)
			if err != nil {
				fail(w, err)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("ETag", `"`+id.String()+`"`)
			if r.Method == http.MethodHead { // the manifest says it all: nothing is fetched
				w.Header().Set("Content-Length", strconv.FormatUint(size, 10))
				return
			}
			if !o.paidRead(r) {
				w.Header().Set("Content-Length", strconv.FormatUint(size, 10))
				// Past the head a failure can only cut the body short, which the
				// reader sees against Content-Length.
				write(&deadlineWriter{w: w, rc: http.NewResponseController(w)})
				return
			}
			// The object comes from other nodes, so it may fail half-way: it
			// is charged at its end, in a trailer, and not at all if it
			// does not arrive whole (a cut chunked body tells the reader).
			pay, c, ok := o.Price.begin(w, r, size)
			if !ok {
				return
			}
			w.Header().Set("Trailer", x402.HeaderResponse)
			if err := write(&deadlineWriter{w: w, rc: http.NewResponseController(w)}); err != nil {
				pay.Abort()
				// Cut the chunked body: a handler that returned would end it
				// cleanly, and the reader would take the object as whole.
				panic(http.ErrAbortHandler)
			}
			resp, err := pay.Finish(c, receiptHash(id.Bytes(), 0, size, pay))
			if err != nil {
				return
			}
			w.Header().Set(x402.HeaderResponse, resp)
		})
	}
	mux.HandleFunc("PUT /storage/v1/pieces/{root}", func(w http.ResponseWriter, r *http.Request) {
		root, err := rootOf(r)
		if err != nil {
			fail(w, err)
			return
		}
		leaf, err := intParam(r, "leaf_size")
		if err != nil {
			fail(w, err)
			return
		}
		// What can be refused is refused before the body is read: a bad
		// leaf size, a size not given or over the limit, a full node.
		if leaf < object.MinLeafSize || leaf > object.MaxLeafSize || leaf&(leaf-1) != 0 {
			fail(w, httpError{http.StatusBadRequest, fmt.Sprintf("leaf_size=%d: want a power of two from %d to %d", leaf, object.MinLeafSize, object.MaxLeafSize)})
			return
		}
		if r.ContentLength <= 0 || r.ContentLength > MaxPieceBytes {
			fail(w, httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("send a piece of 1 to %d bytes with its Content-Length", MaxPieceBytes)})
			return
		}
		if err := store.Room(r.ContentLength); err != nil {
			fail(w, err)
			return
		}
		data := make([]byte, r.ContentLength)
		_, err = io.ReadFull(http.MaxBytesReader(w, r.Body, r.ContentLength), data)
		if err != nil {
			fail(w, httpError{http.StatusBadRequest, fmt.Sprintf("the body ended before its Content-Length, %d bytes: %v", r.ContentLength, err)})
			return
		}
		if err := store.PutPiece(root, leaf, data); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /storage/v1/pieces/{root}", func(w http.ResponseWriter, r *http.Request) {
		root, err := rootOf(r)
		if err != nil {
			fail(w, err)
			return
		}
		f, err := store.Open(root)
		if err != nil {
			fail(w, err)
			return
		}
		defer f.Close()
		if o.paidRead(r) {
			st, err := f.Stat()
			if err != nil {
				fail(w, err)
				return
			}
			off, n, err := byteRange(r.Header.Get("Range"), uint64(st.Size()))
			if err != nil {
				fail(w, err)
				return
			}
			pay, c, ok := o.Price.begin(w, r, n)
			if !ok || !settleBefore(w, pay, c, receiptHash(root, off, n, pay)) {
				return
			}
			// What was paid for is the range asked for: no condition may
			// turn it into a 304 or the whole piece, and ServeContent reads
			// the range as it was charged (its parser is not ours: a number
			// past int64 is a 416 there).
			for _, h := range []string{"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range"} {
				r.Header.Del(h)
			}
			if r.Header.Get("Range") != "" {
				r.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
			}
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable") // named by its content
		http.ServeContent(w, r, "", time.Time{}, f)                            // from the file: sendfile, no copy in memory
	})
	mux.HandleFunc("PUT /storage/v1/manifests/{cid}", func(w http.ResponseWriter, r *http.Request) {
		id, err := cidOf(r)
		if err != nil {
			fail(w, err)
			return
		}
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxManifestBytes))
		if err != nil {
			fail(w, httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("a manifest is at most %d bytes: %v", MaxManifestBytes, err)})
			return
		}
		if err := store.PutManifest(id, b); err != nil {
			fail(w, err)
			return
		}
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /storage/v1/manifests/{cid}", func(w http.ResponseWriter, r *http.Request) {
		id, err := cidOf(r)
		if err != nil {
			fail(w, err)
			return
		}
		_, b, err := store.Manifest(id)
		if err != nil {
			fail(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/protobuf")
		w.Write(b)
	})
	mux.HandleFunc("GET /storage/v1/proofs/{root}", func(w http.ResponseWriter, r *http.Request) {
		root, err := rootOf(r)
		if err != nil {
			fail(w, err)
			return
		}
		size, err := intParam(r, "leaf_size")
		if err != nil {
			fail(w, err)
			return
		}
		i, err := intParam(r, "leaf")
		if err != nil {
			fail(w, err)
			return
		}
		leaf, path, err := store.Prove(root, size, i)
		if err != nil {
			fail(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(Proof{Leaf: leaf, Path: path})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	return mux
}

// Proof is a node's answer to a challenge for a leaf.
type Proof struct {
	Leaf []byte   `json:"leaf"`
	Path [][]byte `json:"path"`
}

type httpError struct {
	status int
	msg    string
}

func (e httpError) Error() string { return e.msg }

func rootOf(r *http.Request) ([]byte, error) {
	root, err := hex.DecodeString(r.PathValue("root"))
	if err != nil || len(root) != 32 {
		return nil, httpError{http.StatusBadRequest, fmt.Sprintf("%q is not a piece root: want 64 hex digits", r.PathValue("root"))}
	}
	return root, nil
}

func cidOf(r *http.Request) (cid.Cid, error) {
	id, err := cid.Decode(r.PathValue("cid"))
	if err != nil {
		return cid.Undef, httpError{http.StatusBadRequest, fmt.Sprintf("%q is not a CID: %v", r.PathValue("cid"), err)}
	}
	return id, nil
}

func intParam(r *http.Request, name string) (int, error) {
	v := r.URL.Query().Get(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, httpError{http.StatusBadRequest, fmt.Sprintf("%s=%q: want a number (?%s=N)", name, v, name)}
	}
	return n, nil
}

// fail writes err as {"error": {"message": ...}} with the status its kind
// calls for.
func fail(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	var he httpError
	switch {
	case errors.As(err, &he):
		status = he.status
	case errors.Is(err, object.ErrPiece), errors.Is(err, object.ErrManifest), errors.Is(err, object.ErrCID), errors.Is(err, piecestore.ErrNoLeaf):
		status = http.StatusBadRequest
	case errors.Is(err, piecestore.ErrNotFound), errors.Is(err, piecestore.ErrNoManifest), errors.Is(err, ErrNoObject):
		status = http.StatusNotFound
	case errors.Is(err, piecestore.ErrQuota):
		status = http.StatusInsufficientStorage
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"message": err.Error()}})
}
