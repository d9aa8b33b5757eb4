package kafka

// Fetch (key 1), v4-12.
//
// v4 is the first with record batches and must stay in range, as must v10
// (zstd; kafka-go). Fetch sessions are not implemented: the answer always
// carries SessionID 0, which makes clients send full requests. v13+ needs
// topic ids in fetch and is not advertised.
//
// Data comes straight from the segment files (pread, no re-encoding),
// starting at the batch containing the fetch offset, whole batches only,
// at least one batch even beyond the byte limits (KIP-74). Consumers read
// up to the high watermark; a follower (ReplicaID >= 0, its broker id)
// reads up to the log end, and its fetch offset is its replication
// position (replica.go). MaxWaitMillis/MinBytes long-poll on partition
// waiters, woken by appends, HW moves and leadership changes.

import (
	"errors"
	"time"

	dlog "github.com/drover/drover/broker/log"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(1, 4, 12, handleFetch) }

func handleFetch(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.FetchRequest)
	deadline := time.Now().Add(time.Duration(req.MaxWaitMillis) * time.Millisecond)
	var wake chan struct{}
	var registered []*partition
	defer func() {
		for _, p := range registered {
			p.removeWaiter(wake)
		}
	}()
	for {
		// The record sets are read into pooled buffers attached to the
		// connection, returned once the response is written (or dropped here).
		cc.releaseBufs()
		resp, total, failed := s.fetchOnce(req, cc.fetchAlloc)
		if total >= int(req.MinBytes) || failed || req.MaxWaitMillis <= 0 || !time.Now().Before(deadline) || s.isClosing() {
			return resp
		}
		if wake == nil {
			wake = make(chan struct{}, 1)
			for _, rt := range req.Topics {
				for _, rp := range rt.Partitions {
					if p := s.topics.get(rt.Topic, rp.Partition); p != nil {
						p.addWaiterCh(wake)
						registered = append(registered, p)
					}
				}
			}
			continue // data may have arrived before registering
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-wake:
		case <-t.C:
		case <-s.closing:
		}
		t.Stop()
	}
}

// fetchOnce reads every requested partition once. failed reports a
// partition error, which ends a long poll (the client must react).
func (s *Server) fetchOnce(req *kmsg.FetchRequest, alloc func(int) []byte) (*kmsg.FetchResponse, int, bool) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	resp.SessionID = 0
	maxBytes := int(req.MaxBytes)
	if maxBytes <= 0 || req.Version < 3 {
		maxBytes = 1 << 30
	}
	total := 0
	failed := false
	snap := s.topics.snapshot()
	for _, rt := range req.Topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic = rt.Topic
		st.TopicID = rt.TopicID
		t := snap.Topics[rt.Topic]
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			sp.PreferredReadReplica = -1
			// Never null: librdkafka rejects a -1 record set size.
			sp.RecordBatches = []byte{}
			if rt.Topic == offsetsTopic && rp.Partition == 0 {
				sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = 0, 0, 0
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions) {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				failed = true
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			p := s.topics.get(rt.Topic, rp.Partition)
			if p == nil || !p.isLeader() {
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
				failed = true
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			if ep := p.epoch(); rp.CurrentLeaderEpoch >= 0 && req.Version >= 9 {
				if rp.CurrentLeaderEpoch < ep {
					sp.ErrorCode = kerr.FencedLeaderEpoch.Code
				} else if rp.CurrentLeaderEpoch > ep {
					sp.ErrorCode = kerr.UnknownLeaderEpoch.Code
				}
				if sp.ErrorCode != 0 {
					failed = true
					st.Partitions = append(st.Partitions, sp)
					continue
				}
			}
			var upTo int64
			if req.ReplicaID >= 0 {
				// A follower: record its position (it has everything below
				// the offset it asks for), which may move the HW and let it
				// into the ISR; it reads up to the log end.
				p.mu.Lock()
				expand := p.leader == p.self && p.updateFollower(req.ReplicaID, rp.FetchOffset, time.Now())
				p.mu.Unlock()
				if expand {
					s.kickISR()
				}
				upTo = p.log.LogEndOffset()
			}
			hw := p.hw.Load()
			sp.HighWatermark, sp.LastStableOffset = hw, hw
			sp.LogStartOffset = p.log.LogStartOffset()
			if req.ReplicaID < 0 {
				upTo = hw
			}
			limit := int(rp.PartitionMaxBytes)
			if rem := maxBytes - total; rem < limit {
				limit = rem
			}
			if limit <= 0 && total > 0 {
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			data, err := p.log.ReadWith(rp.FetchOffset, max(limit, 1), upTo, alloc)
			if err != nil {
				if errors.Is(err, dlog.ErrOffsetOutOfRange) {
					sp.ErrorCode = kerr.OffsetOutOfRange.Code
				} else {
					sp.ErrorCode = kerr.KafkaStorageError.Code
					s.log.Warn("fetch read", "topic", rt.Topic, "partition", rp.Partition, "err", err)
				}
				failed = true
			} else {
				if data != nil {
					sp.RecordBatches = data
				}
				total += len(data)
				s.metrics.fetchedB.Add(int64(len(data)))
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, total, failed
}
