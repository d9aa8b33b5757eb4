package kafka

// ListOffsets (key 2), v1-7 (auto.offset.reset, kcat -o / -Q).
//
// Timestamp -2 = log start, -1 = high watermark (the latest offset a
// consumer may read), -3 (v7) = the record with the largest timestamp;
// otherwise the first batch whose max timestamp is >= the target (batch
// granularity: records are never decoded on the broker). No match answers
// offset -1, timestamp -1, as Kafka does. A partition listed twice in one
// request answers INVALID_REQUEST for each entry, as Kafka's duplicate
// check does (one answer per partition is ambiguous for the client).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(2, 1, 7, handleListOffsets) }

func handleListOffsets(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	snap := s.topics.snapshot()
	type tpKey struct {
		topic     string
		partition int32
	}
	dups := map[tpKey]int{}
	for _, rt := range req.Topics {
		for _, rp := range rt.Partitions {
			dups[tpKey{rt.Topic, rp.Partition}]++
		}
	}
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		t := snap.Topics[rt.Topic]
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			st.Partitions = append(st.Partitions, sp)
			out := &st.Partitions[len(st.Partitions)-1]
			if dups[tpKey{rt.Topic, rp.Partition}] > 1 {
				out.ErrorCode = kerr.InvalidRequest.Code
				continue
			}
			if rt.Topic == offsetsTopic && rp.Partition == 0 {
				out.Offset = 0
				continue
			}
			if t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions) {
				out.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			p := s.topics.get(rt.Topic, rp.Partition)
			if p == nil || !p.isLeader() {
				out.ErrorCode = kerr.NotLeaderForPartition.Code
				continue
			}
			ep := p.epoch()
			if req.Version >= 4 && rp.CurrentLeaderEpoch >= 0 {
				if rp.CurrentLeaderEpoch < ep {
					out.ErrorCode = kerr.FencedLeaderEpoch.Code
					continue
				} else if rp.CurrentLeaderEpoch > ep {
					out.ErrorCode = kerr.UnknownLeaderEpoch.Code
					continue
				}
			}
			out.LeaderEpoch = ep
			hw := p.hw.Load()
			switch rp.Timestamp {
			case -1:
				out.Offset = hw
			case -2:
				out.Offset = p.log.LogStartOffset()
			case -3:
				off, ts := p.log.MaxTimestamp()
				if off >= 0 && off < hw {
					out.Offset, out.Timestamp = off, ts
				}
			default:
				off, ts, found, err := p.log.OffsetForTimestamp(rp.Timestamp)
				if err != nil {
					out.ErrorCode = kerr.KafkaStorageError.Code
				} else if found && off < hw {
					out.Offset, out.Timestamp = off, ts
				}
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
