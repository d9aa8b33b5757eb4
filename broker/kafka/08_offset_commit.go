package kafka

// OffsetCommit (key 8), v0-8. Generation -1 with no member id is a
// "simple" commit, allowed while the group has no members. Otherwise the
// member and generation must match; commits are refused with
// REBALANCE_IN_PROGRESS only while the leader computes assignments.
// Offsets persist in groups_store.go.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(8, 0, 8, handleOffsetCommit) }

func handleOffsetCommit(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.OffsetCommitRequest)
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	code := s.groups.checkCommit(req)
	offs := map[tp]committed{}
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			if code == 0 {
				ep := rp.LeaderEpoch
				if req.Version < 6 {
					ep = -1
				}
				offs[tp{rt.Topic, rp.Partition}] = committed{offset: rp.Offset, epoch: ep, metadata: rp.Metadata}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if code == 0 && len(offs) > 0 {
		if err := s.groups.offsets.commit(req.Group, offs); err != nil {
			s.log.Error("commit offsets", "group", req.Group, "err", err)
			for i := range resp.Topics {
				for j := range resp.Topics[i].Partitions {
					resp.Topics[i].Partitions[j].ErrorCode = kerr.UnknownServerError.Code
				}
			}
		}
	}
	return resp
}

func (c *groupCoordinator) checkCommit(req *kmsg.OffsetCommitRequest) int16 {
	if req.Group == "" {
		return kerr.InvalidGroupID.Code
	}
	if !c.s.isCoordinator(req.Group) {
		return kerr.NotCoordinator.Code
	}
	g := c.get(req.Group, true)
	g.mu.Lock()
	defer g.mu.Unlock()
	if req.Version == 0 || (req.Generation < 0 && req.MemberID == "") {
		if len(g.members) > 0 {
			return kerr.UnknownMemberID.Code
		}
		return 0
	}
	m := g.members[req.MemberID]
	switch {
	case m == nil:
		return kerr.UnknownMemberID.Code
	case req.InstanceID != nil && g.statics[*req.InstanceID] != m.id:
		return kerr.FencedInstanceID.Code
	case req.Generation != g.generation:
		return kerr.IllegalGeneration.Code
	case g.state == stateCompleting:
		return kerr.RebalanceInProgress.Code
	}
	if m.joinCh == nil {
		g.resetSession(m)
	}
	return 0
}
