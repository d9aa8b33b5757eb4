package kafka

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"reflect"
	"runtime"
	"sort"
	"testing"
	"testing/iotest"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// craftedSpin is a 24-byte Metadata v12 (flexible) request whose body-level
// tag count is 2^32-1 with nothing after it: kmsg's tag loop used to run
// 4 billion empty iterations on the exhausted reader (~5 s of CPU).
func craftedSpin() []byte {
	body := []byte{
		0x00,       // Topics: null compact array
		0x00, 0x00, // AllowAutoTopicCreation, IncludeTopicAuthorizedOperations
		0xff, 0xff, 0xff, 0xff, 0x0f, // tag count 4294967295
	}
	return frame(3, 12, 1, body, true)[4:]
}

// craftedSpinNested hides the bogus tag count in an array element's tag
// section (JoinGroup v9 protocols[0]).
func craftedSpinNested() []byte {
	var b []byte
	b = append(b, 2, 'g')                       // Group
	b = append(b, 0, 0, 0, 1)                   // SessionTimeoutMillis
	b = append(b, 0, 0, 0, 1)                   // RebalanceTimeoutMillis
	b = append(b, 1)                            // MemberID ""
	b = append(b, 0)                            // InstanceID null
	b = append(b, 2, 'c')                       // ProtocolType
	b = append(b, 2)                            // Protocols: 1 element
	b = append(b, 2, 'r')                       // Name
	b = append(b, 1)                            // Metadata: empty
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0x0f) // element tag count
	return frame(11, 9, 1, b, true)[4:]
}

// craftedSpinTag hides it inside a known tagged struct: Fetch v12's tag 1
// (ReplicaState), which kmsg parses with its own reader, tag loop included.
func craftedSpinTag() []byte {
	var b []byte
	b = binary.BigEndian.AppendUint32(b, 0xffffffff) // ReplicaID
	b = append(b, make([]byte, 4+4+4+1+4+4)...)      // MaxWait .. SessionEpoch
	b = append(b, 1, 1, 1)                           // Topics, ForgottenTopics: empty; RackID ""
	content := append(make([]byte, 4+8), 0xff, 0xff, 0xff, 0xff, 0x0f)
	b = append(b, 1, 1, byte(len(content))) // 1 tag: key 1, size
	b = append(b, content...)
	return frame(1, 12, 1, b, true)[4:]
}

// craftedArrays is a size-byte Fetch v4 (not flexible) request whose Topics
// and Topics[0].Partitions arrays each claim (almost) every remaining byte:
// kmsg's ArrayLen only checks "one byte per element", so it allocates
// ~64+72 bytes of Go structs per frame byte before finding out.
func craftedArrays(size int) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint32(b, 0xffffffff) // ReplicaID -1
	b = binary.BigEndian.AppendUint32(b, 0)          // MaxWaitMillis
	b = binary.BigEndian.AppendUint32(b, 0)          // MinBytes
	b = binary.BigEndian.AppendUint32(b, 1<<20)      // MaxBytes
	b = append(b, 0)                                 // IsolationLevel
	hdr := len(frame(1, 4, 1, nil, false)) - 4
	rest := size - hdr - len(b)
	b = binary.BigEndian.AppendUint32(b, uint32(rest-4))  // Topics
	b = append(b, 0, 0)                                   // Topics[0].Topic ""
	b = binary.BigEndian.AppendUint32(b, uint32(rest-10)) // Topics[0].Partitions
	for len(b) < size-hdr {
		b = append(b, 'a') // printable: keeps the fuzz seed file small
	}
	return frame(1, 4, 1, b, false)[4:]
}

// measureDecode returns the bytes allocated by, and the time of, one
// decodeRequest call.
func measureDecode(t *testing.T, body []byte) (alloc uint64, took time.Duration, err error) {
	t.Helper()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, _, _, err = decodeRequest(body)
	took = time.Since(start)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, took, err
}

// Without the guard: spin-top/spin-nested/spin-tag ran 85-105 s of CPU each (4e9
// iterations of kmsg's tag loop, each a map write) and arrays-1MiB
// allocated 142,607,240 bytes (136x the frame).
func TestDecodeCraftedRequestsAreCheap(t *testing.T) {
	// Reference: a well-formed request of similar size.
	okReq := kmsg.NewPtrMetadataRequest()
	okReq.Version = 12
	good := frame(3, 12, 1, okReq.AppendTo(nil), true)[4:]
	if _, _, _, err := decodeRequest(good); err != nil {
		t.Fatalf("well-formed request: %v", err)
	}
	for _, key := range []int16{1, 3, 11} { // derive the schemas up front: not counted below
		for v := registry[key].min; v <= registry[key].max; v++ {
			requestSchema(key, v)
		}
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"spin-top", craftedSpin()},
		{"spin-nested", craftedSpinNested()},
		{"spin-tag", craftedSpinTag()},
		{"arrays-100B", craftedArrays(100)},
		{"arrays-1MiB", craftedArrays(1 << 20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alloc, took, err := measureDecode(t, tc.body)
			t.Logf("%d-byte request: alloc %d B, took %v, err %v", len(tc.body), alloc, took, err)
			if err == nil {
				t.Errorf("decoded without error")
			}
			// Typical: ~20 us and < 2 KB.
			if limit := uint64(4<<10 + 8*len(tc.body)); alloc > limit {
				t.Errorf("decode allocated %d bytes, want < %d", alloc, limit)
			}
			if took > 200*time.Millisecond {
				t.Errorf("decode took %v, want < 200ms", took)
			}
		})
	}
}

// TestDecodeGuardAcceptsKmsgEncodings: for every registered key and
// version, the derived schema walks kmsg's own encoding of a fully
// populated request (every field set, tagged ones included, arrays of two
// elements) consuming exactly every byte, and of a request with many
// minimal elements (which must stay within the memory budget).
func TestDecodeGuardAcceptsKmsgEncodings(t *testing.T) {
	var keys []int
	for k := range registry {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	for _, k := range keys {
		h := registry[int16(k)]
		for v := h.min; v <= h.max; v++ {
			for _, mode := range []struct {
				name    string
				full    bool
				n       int
				maxDeep int
			}{{"full", true, 2, 4}, {"many-minimal", false, 40, 2}} {
				req := kmsg.RequestForKey(int16(k))
				setDefault(reflect.ValueOf(req))
				req.SetVersion(v)
				populate(reflect.ValueOf(req).Elem(), true, mode.full, mode.n, mode.maxDeep)
				body := req.AppendTo(nil)
				s, err := requestSchema(int16(k), v)
				if err != nil {
					t.Fatalf("key %d v%d: %v", k, v, err)
				}
				w := guardWalker{rd: kbin.Reader{Src: body}, flexible: req.IsFlexible(), budget: decodeAllocBudget(len(body)), strict: true}
				if err := w.walk(s); err != nil || len(w.rd.Src) != 0 {
					t.Fatalf("key %d v%d %s: guard: %v, %d of %d bytes left", k, v, mode.name, err, len(w.rd.Src), len(body))
				}
				if _, _, _, err := decodeRequest(frame(int16(k), v, 1, body, req.IsFlexible())[4:]); err != nil {
					t.Fatalf("key %d v%d %s: decodeRequest: %v", k, v, mode.name, err)
				}
			}
		}
	}
}

// populate fills a kmsg struct: full sets every field to a non-default
// value; arrays of structs get n elements down to maxDeep levels.
func populate(v reflect.Value, root, full bool, n, maxDeep int) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() || sf.Type == tagsType || (root && sf.Name == "Version") {
			continue
		}
		fv := v.Field(i)
		switch sf.Type.Kind() {
		case reflect.Slice:
			et := sf.Type.Elem()
			if et.Kind() == reflect.Uint8 {
				if full {
					fv.SetBytes([]byte{1, 2, 3})
				}
				continue
			}
			if et.Kind() == reflect.Struct && maxDeep == 0 {
				continue
			}
			m := n
			if et.Kind() != reflect.Struct {
				if !full {
					continue
				}
				m = 2
			}
			for j := 0; j < m; j++ {
				ev := reflect.New(et)
				setDefault(ev)
				if et.Kind() == reflect.Struct {
					populate(ev.Elem(), false, full, n, maxDeep-1)
				} else {
					setScalar(ev.Elem())
				}
				fv.Set(reflect.Append(fv, ev.Elem()))
			}
		case reflect.Struct:
			if full {
				populate(fv, false, full, n, maxDeep-1)
			}
		default:
			if full {
				setScalar(fv)
			}
		}
	}
}

func setScalar(fv reflect.Value) {
	switch fv.Kind() {
	case reflect.Bool:
		fv.SetBool(true)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		fv.SetInt(7)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		fv.SetUint(7)
	case reflect.Float64:
		fv.SetFloat(1.5)
	case reflect.String:
		fv.SetString("name")
	case reflect.Pointer:
		if fv.Type().Elem().Kind() == reflect.String {
			s := "x"
			fv.Set(reflect.ValueOf(&s))
		}
	case reflect.Array:
		for i := 0; i < fv.Len(); i++ {
			fv.Index(i).SetUint(uint64(i + 1))
		}
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	produce := kmsg.NewPtrProduceRequest()
	produce.Version = 9
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "events"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = make([]byte, 16<<10)
	pt.Partitions = append(pt.Partitions, pp)
	produce.Topics = append(produce.Topics, pt)
	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version = 12
	for i := 0; i < 10; i++ {
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = fmt.Sprintf("topic-%d", i)
		for p := 0; p < 50; p++ {
			fp := kmsg.NewFetchRequestTopicPartition()
			fp.Partition = int32(p)
			ft.Partitions = append(ft.Partitions, fp)
		}
		fetch.Topics = append(fetch.Topics, ft)
	}
	for _, req := range []kmsg.Request{produce, fetch} {
		body := frame(req.Key(), req.GetVersion(), 1, req.AppendTo(nil), true)[4:]
		b.Run(fmt.Sprintf("%T/guard", req), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := guardDecode(req.Key(), req.GetVersion(), true, body[15:]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("%T/decodeRequest", req), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, _, _, err := decodeRequest(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestReadBodyFrame(t *testing.T) {
	for _, size := range []int{8, eagerBodyBytes, eagerBodyBytes + 1, 3*eagerBodyBytes + 12345} {
		want := make([]byte, size)
		for i := range want {
			want[i] = byte(i * 7)
		}
		got, err := readBody(iotest.HalfReader(bytes.NewReader(append(want, 1, 2, 3))), size)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("size %d: err %v, equal %v", size, err, bytes.Equal(got, want))
		}
		if _, err := readBody(bytes.NewReader(want[:size-1]), size); err == nil {
			t.Fatalf("size %d: short body read without error", size)
		}
	}
}

// TestFrameSizePrefixAloneAllocatesLittle: connections that announce
// 64 MiB frames and then send nothing must not make the broker allocate
// 64 MiB each (it did: make([]byte, size) on the size prefix).
func TestFrameSizePrefixAloneAllocatesLittle(t *testing.T) {
	s := startServer(t, t.TempDir())
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	for i := 0; i < 4; i++ {
		c, err := net.Dial("tcp", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{0x04, 0, 0, 0, 0, 1, 0, 0}) // 64 MiB frame, 4 bytes of it
	}
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		runtime.ReadMemStats(&ms)
		if grown := int64(ms.HeapAlloc) - int64(base); grown > 32<<20 {
			t.Fatalf("4 idle 64 MiB frames grew the heap by %d MiB", grown>>20)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
