package kafka

// OffsetForLeaderEpoch (key 23), v3-4.
//
// For each partition: the largest leader epoch <= the requested one that
// this leader's log knows, and the end offset of that epoch (the start of
// the next epoch, or the log end for the latest). Followers use it to
// truncate a diverged log at the epoch boundary before fetching; consumers
// (franz-go, Java) use it to detect truncation after a leader change.
// Served by the leader only; CurrentLeaderEpoch is checked as in Fetch.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(23, 3, 4, handleOffsetForLeaderEpoch) }

func handleOffsetForLeaderEpoch(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	snap := s.topics.snapshot()
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		t := snap.Topics[rt.Topic]
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch, sp.EndOffset = -1, -1
			var p *partition
			if t != nil && rp.Partition >= 0 && int(rp.Partition) < len(t.Partitions) {
				p = s.topics.get(rt.Topic, rp.Partition)
			}
			switch {
			case t == nil || rp.Partition < 0 || int(rp.Partition) >= len(t.Partitions):
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case p == nil:
				sp.ErrorCode = kerr.NotLeaderForPartition.Code
			default:
				p.mu.Lock()
				lead, ep := p.leader == p.self, p.leaderEpoch
				p.mu.Unlock()
				switch {
				case !lead:
					sp.ErrorCode = kerr.NotLeaderForPartition.Code
				case rp.CurrentLeaderEpoch >= 0 && rp.CurrentLeaderEpoch < ep:
					sp.ErrorCode = kerr.FencedLeaderEpoch.Code
				case rp.CurrentLeaderEpoch > ep:
					sp.ErrorCode = kerr.UnknownLeaderEpoch.Code
				default:
					sp.LeaderEpoch, sp.EndOffset = p.log.EndOffsetForEpoch(rp.LeaderEpoch)
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
