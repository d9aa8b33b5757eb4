package kafka

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	rtmetrics "runtime/metrics"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func frame(key, version int16, corr int32, body []byte, flexible bool) []byte {
	b := []byte{0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	if flexible {
		b = append(b, 0)
	}
	b = append(b, body...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func readFrame(t *testing.T, r io.Reader) []byte {
	t.Helper()
	var sz [4]byte
	if _, err := io.ReadFull(r, sz[:]); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, binary.BigEndian.Uint32(sz[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestApiVersionsWire(t *testing.T) {
	s := startServer(t, t.TempDir())
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)

	// v3 is flexible, but the response header has no tag byte.
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName, req.ClientSoftwareVersion = "t", "1"
	c.Write(frame(18, 3, 7, req.AppendTo(nil), true))
	body := readFrame(t, r)
	if corr := int32(binary.BigEndian.Uint32(body)); corr != 7 {
		t.Fatalf("corr %d", corr)
	}
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 3
	if err := resp.ReadFrom(body[4:]); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("decode v3 response right after the correlation id: %v %d", err, resp.ErrorCode)
	}
	want := map[int16][2]int16{0: {0, 11}, 1: {4, 12}, 3: {0, 12}, 18: {0, 3}, 2: {1, 7}, 10: {0, 4}, 11: {0, 9}, 14: {0, 5}, 22: {0, 4}}
	got := map[int16][2]int16{}
	for _, k := range resp.ApiKeys {
		got[k.ApiKey] = [2]int16{k.MinVersion, k.MaxVersion}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("key %d: advertised %v, want %v", k, got[k], v)
		}
	}
	for _, k := range []int16{24, 68, 71} {
		if _, ok := got[k]; ok {
			t.Errorf("key %d advertised", k)
		}
	}

	// A future version gets a v0 body with UNSUPPORTED_VERSION and the list.
	c.Write(frame(18, 99, 8, []byte{1, 2, 3}, true))
	body = readFrame(t, r)
	v0 := kmsg.NewPtrApiVersionsResponse()
	v0.Version = 0
	if err := v0.ReadFrom(body[4:]); err != nil || v0.ErrorCode != kerr.UnsupportedVersion.Code || len(v0.ApiKeys) != len(resp.ApiKeys) {
		t.Fatalf("future version: %v code %d keys %d", err, v0.ErrorCode, len(v0.ApiKeys))
	}
}

func TestBadFramesCloseOnlyThatConnection(t *testing.T) {
	s := startServer(t, t.TempDir(), func(c *Config) { c.MaxRequestBytes = 1 << 20 })
	good, _ := net.Dial("tcp", s.Addr())
	defer good.Close()
	for _, bad := range [][]byte{
		{0x7f, 0xff, 0xff, 0xff},                                            // 2 GiB frame: refused before allocating
		{0, 0, 0, 10, 0, 99, 0, 0, 0, 0, 0, 1, 0xff, 0xff},                  // unknown api key
		frame(3, 12, 1, []byte{0xff, 0xff, 0xff}, true),                     // garbage Metadata body
		append([]byte{0, 0, 0, byte(len(craftedSpin()))}, craftedSpin()...), // tag count 2^32-1: kmsg spun for minutes
	} {
		c, _ := net.Dial("tcp", s.Addr())
		c.Write(bad)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("bad frame %x: want EOF, got %v", bad[:4], err)
		}
		c.Close()
	}
	req := kmsg.NewPtrApiVersionsRequest()
	good.Write(frame(18, 0, 1, req.AppendTo(nil), false))
	readFrame(t, good)
}

func FuzzDecodeRequest(f *testing.F) {
	for _, key := range []int16{0, 1, 3, 8, 9, 11, 14, 18, 19} {
		req := kmsg.RequestForKey(key)
		req.SetVersion(req.MaxVersion())
		f.Add(frame(key, req.MaxVersion(), 1, req.AppendTo(nil), req.IsFlexible())[4:])
	}
	// testdata/fuzz/FuzzDecodeRequest/crafted-* are requests that made kmsg
	// spin for minutes or allocate ~136x the frame (see decode_guard.go).
	// Checked here: decoding allocates at most a bounded multiple of the
	// input (schemas are derived first so that is not counted) and does not
	// take seconds (normal: microseconds; the bound is deliberately loose).
	for key, h := range registry {
		for v := h.min; v <= h.max; v++ {
			requestSchema(key, v)
		}
	}
	sample := []rtmetrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	f.Fuzz(func(t *testing.T, body []byte) {
		rtmetrics.Read(sample)
		before := sample[0].Value.Uint64()
		start := time.Now()
		req, _, _, err := decodeRequest(body)
		took := time.Since(start)
		rtmetrics.Read(sample)
		if alloc, limit := sample[0].Value.Uint64()-before, uint64(256<<10+48*len(body)); alloc > limit {
			t.Errorf("decoding %d bytes allocated %d bytes (limit %d)", len(body), alloc, limit)
		}
		if took > 2*time.Second {
			t.Errorf("decoding %d bytes took %v", len(body), took)
		}
		if err == nil && req != nil {
			// A decoded request must re-encode without panicking.
			req.AppendTo(nil)
			_ = kbin.Reader{}
		}
	})
}
