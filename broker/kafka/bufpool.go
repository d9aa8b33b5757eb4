package kafka

import (
	"encoding/binary"
	"io"
	"math/bits"
	"net"
	"sync"
)

// Byte buffers for the bulk data paths (produce frame bodies, fetch reads),
// pooled by power-of-two size class so a 1 MiB batch is not allocated,
// zeroed and garbage collected once per request. A buffer in class k has a
// capacity of at least 1<<k. Buffers below minPooledBuf or above
// maxPooledBuf are plain allocations.
const (
	minPooledShift = 12 // 4 KiB
	maxPooledShift = 24 // 16 MiB
	minPooledBuf   = 1 << minPooledShift
	maxPooledBuf   = 1 << maxPooledShift
)

var bufPools [maxPooledShift + 1]sync.Pool

// bufClass is the smallest class whose buffers hold n bytes.
func bufClass(n int) int {
	if n <= minPooledBuf {
		return minPooledShift
	}
	return bits.Len(uint(n - 1))
}

// pooledBuf returns a pooled buffer of length n and ok, or ok=false (nothing
// allocated) when the pool has none or n is out of the pooled range.
func pooledBuf(n int) ([]byte, bool) {
	if n > maxPooledBuf {
		return nil, false
	}
	// Frames of one producer vary in size around a class boundary: a
	// buffer of the next class up serves too.
	k := bufClass(n)
	for _, c := range [2]int{k, k + 1} {
		if c > maxPooledShift {
			break
		}
		if v := bufPools[c].Get(); v != nil {
			return (*v.(*[]byte))[:n], true
		}
	}
	return nil, false
}

// getBuf returns a buffer of length n, pooled or newly allocated with its
// class's capacity (so it can go back to the pool).
func getBuf(n int) []byte {
	if b, ok := pooledBuf(n); ok {
		return b
	}
	if n > maxPooledBuf {
		return make([]byte, n)
	}
	return make([]byte, n, 1<<bufClass(n))
}

// putBuf hands a buffer back (it must no longer be referenced).
func putBuf(b []byte) {
	c := cap(b)
	if c < minPooledBuf || c > maxPooledBuf {
		return
	}
	k := bits.Len(uint(c)) - 1 // the largest class it fills
	b = b[:0]
	bufPools[k].Put(&b)
}

// readFrameBody reads a request frame body of size bytes. Big bodies land in a
// pooled buffer when the pool has one (no allocation before the bytes
// arrive beyond what readBody would do); recycleFrame returns it.
func readFrameBody(r io.Reader, size int) ([]byte, error) {
	if size >= minPooledBuf {
		b, ok := pooledBuf(size)
		if !ok && size <= eagerBodyBytes {
			b, ok = getBuf(size), true
		}
		if ok {
			_, err := io.ReadFull(r, b)
			return b, err
		}
	}
	return readBody(r, size)
}

// recycleFrame pools a handled frame body if nothing can still refer to it:
// only Produce bodies (the records are written to the log while handling;
// kmsg copies strings, and the response refers to nothing in the request).
// Other requests' decoded byte fields (group metadata, ...) alias the body
// and may outlive the request.
func recycleFrame(body []byte) {
	if len(body) < minPooledBuf || len(body) > maxPooledBuf || binary.BigEndian.Uint16(body) != 0 {
		return
	}
	if c := 1 << bufClass(len(body)); cap(body) < c {
		// Grown by readBody as the bytes came: too small for its class.
		// The client did send this much, so keep a class-sized buffer for
		// the next frame like it.
		body = make([]byte, 0, c)
	}
	putBuf(body)
}

// connBufs are a connection's reusable response-writing state and the
// pooled buffers attached to the request in flight.
type connBufs struct {
	bufs [][]byte   // pooled log reads of the Fetch being answered
	cuts []fetchCut // record sets left out of the frame
	iov  net.Buffers
}
