package main

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// nullSink is the ceiling the broker is measured against: a Kafka-wire server that answers just
// enough for a producer (ApiVersions, Metadata, InitProducerId) and acks every Produce without
// storing or validating anything. Every topic asked about exists with `partitions` partitions,
// led by the sink itself.
type nullSink struct {
	ln         net.Listener
	partitions int32
	host       string
	port       int32

	mu      sync.Mutex
	topics  map[string][16]byte
	offsets map[string][]int64 // next offset per topic partition, so acks carry plausible offsets
	pid     int64
	conns   map[net.Conn]struct{}
	wg      sync.WaitGroup
}

// sinkVersions is what the sink advertises (and so what the client may send).
var sinkVersions = map[int16][2]int16{
	18: {0, 3},  // ApiVersions
	3:  {0, 12}, // Metadata
	0:  {3, 11}, // Produce: record batches only; v12+ is KIP-890, v13 needs topic ids
	22: {0, 4},  // InitProducerId
}

func startNullSink(partitions int) (*nullSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("null sink listen: %w", err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	p, _ := strconv.Atoi(port)
	s := &nullSink{
		ln: ln, partitions: int32(partitions), host: host, port: int32(p),
		topics: map[string][16]byte{}, offsets: map[string][]int64{}, conns: map[net.Conn]struct{}{},
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

func (s *nullSink) Addr() string { return s.ln.Addr().String() }

func (s *nullSink) Close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *nullSink) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			_ = s.serve(c)
			c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

const maxFrame = 100 << 20

// serve answers requests in order on one connection; clients pipeline produce requests, so reads
// are buffered and responses written as soon as each is ready.
func (s *nullSink) serve(c net.Conn) error {
	r := bufio.NewReaderSize(c, 1<<20)
	var (
		sz   [4]byte
		body []byte
		out  []byte
	)
	for {
		if _, err := io.ReadFull(r, sz[:]); err != nil {
			return err
		}
		n := int32(binary.BigEndian.Uint32(sz[:]))
		if n < 8 || n > maxFrame {
			return fmt.Errorf("bad frame size %d", n)
		}
		if cap(body) < int(n) {
			body = make([]byte, n)
		}
		body = body[:n]
		if _, err := io.ReadFull(r, body); err != nil {
			return err
		}
		key := int16(binary.BigEndian.Uint16(body[0:]))
		ver := int16(binary.BigEndian.Uint16(body[2:]))
		corr := int32(binary.BigEndian.Uint32(body[4:]))
		rest := body[8:]
		if len(rest) < 2 {
			return errors.New("short header")
		}
		// client_id: nullable non-compact string even in flexible headers.
		if l := int16(binary.BigEndian.Uint16(rest)); l > 0 {
			if len(rest) < 2+int(l) {
				return errors.New("short client id")
			}
			rest = rest[2+int(l):]
		} else {
			rest = rest[2:]
		}
		req := kmsg.RequestForKey(key)
		if req == nil {
			return fmt.Errorf("unknown api key %d", key)
		}
		req.SetVersion(ver)
		if req.IsFlexible() {
			var err error
			if rest, err = skipTags(rest); err != nil {
				return err
			}
		}
		if err := req.ReadFrom(rest); err != nil {
			return fmt.Errorf("decode key %d v%d: %w", key, ver, err)
		}
		resp, err := s.handle(req)
		if err != nil {
			return err
		}
		if resp == nil { // acks=0 produce: no response
			continue
		}
		out = append(out[:0], 0, 0, 0, 0)
		out = binary.BigEndian.AppendUint32(out, uint32(corr))
		if req.IsFlexible() && key != 18 { // ApiVersions responses never carry header tags
			out = append(out, 0)
		}
		out = resp.AppendTo(out)
		binary.BigEndian.PutUint32(out, uint32(len(out)-4))
		if _, err := c.Write(out); err != nil {
			return err
		}
	}
}

func skipTags(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, errors.New("bad tag count")
	}
	b = b[k:]
	for i := uint64(0); i < n; i++ {
		if _, k = binary.Uvarint(b); k <= 0 {
			return nil, errors.New("bad tag")
		}
		b = b[k:]
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return nil, errors.New("bad tag size")
		}
		b = b[k+int(l):]
	}
	return b, nil
}

func (s *nullSink) handle(req kmsg.Request) (kmsg.Response, error) {
	switch req := req.(type) {
	case *kmsg.ApiVersionsRequest:
		resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
		if req.Version > sinkVersions[18][1] {
			// Answer in v0 form with UNSUPPORTED_VERSION and the list; the client retries lower.
			resp.SetVersion(0)
			resp.ErrorCode = 35
		}
		for k, v := range sinkVersions {
			ak := kmsg.NewApiVersionsResponseApiKey()
			ak.ApiKey, ak.MinVersion, ak.MaxVersion = k, v[0], v[1]
			resp.ApiKeys = append(resp.ApiKeys, ak)
		}
		return resp, nil
	case *kmsg.MetadataRequest:
		return s.metadata(req), nil
	case *kmsg.InitProducerIDRequest:
		resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
		s.mu.Lock()
		s.pid++
		resp.ProducerID = s.pid
		s.mu.Unlock()
		resp.ProducerEpoch = 0
		return resp, nil
	case *kmsg.ProduceRequest:
		return s.produce(req), nil
	default:
		return nil, fmt.Errorf("null sink does not serve api key %d", req.Key())
	}
}

func (s *nullSink) metadata(req *kmsg.MetadataRequest) *kmsg.MetadataResponse {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	b := kmsg.NewMetadataResponseBroker()
	b.NodeID, b.Host, b.Port = 1, s.host, s.port
	resp.Brokers = append(resp.Brokers, b)
	cid := "drover-bench-null-sink"
	resp.ClusterID = &cid
	resp.ControllerID = 1
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	if req.Topics == nil {
		for t := range s.topics {
			names = append(names, t)
		}
	}
	for _, t := range req.Topics {
		if t.Topic != nil {
			names = append(names, *t.Topic)
		}
	}
	for _, name := range names {
		id, ok := s.topics[name]
		if !ok {
			_, _ = rand.Read(id[:])
			s.topics[name] = id
			s.offsets[name] = make([]int64, s.partitions)
		}
		mt := kmsg.NewMetadataResponseTopic()
		mt.Topic = kmsg.StringPtr(name)
		mt.TopicID = id
		for p := int32(0); p < s.partitions; p++ {
			mp := kmsg.NewMetadataResponseTopicPartition()
			mp.Partition, mp.Leader, mp.LeaderEpoch = p, 1, 0
			mp.Replicas, mp.ISR = []int32{1}, []int32{1}
			mt.Partitions = append(mt.Partitions, mp)
		}
		resp.Topics = append(resp.Topics, mt)
	}
	return resp
}

func (s *nullSink) produce(req *kmsg.ProduceRequest) kmsg.Response {
	if req.Acks == 0 {
		return nil
	}
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range req.Topics {
		rt := kmsg.NewProduceResponseTopic()
		rt.Topic = t.Topic
		offs := s.offsets[t.Topic]
		for _, p := range t.Partitions {
			rp := kmsg.NewProduceResponseTopicPartition()
			rp.Partition = p.Partition
			if offs == nil || p.Partition < 0 || int(p.Partition) >= len(offs) {
				rp.ErrorCode = 3 // UNKNOWN_TOPIC_OR_PARTITION
			} else {
				rp.BaseOffset = offs[p.Partition]
				offs[p.Partition] += countRecords(p.Records)
				rp.LogStartOffset = 0
				rp.LogAppendTime = -1
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// countRecords walks the v2 batch headers (LastOffsetDelta at byte 23, batch length at 8).
func countRecords(b []byte) int64 {
	var n int64
	for len(b) >= 61 {
		l := int(int32(binary.BigEndian.Uint32(b[8:])))
		n += int64(int32(binary.BigEndian.Uint32(b[23:]))) + 1
		if l <= 0 || 12+l > len(b) {
			break
		}
		b = b[12+l:]
	}
	return n
}
