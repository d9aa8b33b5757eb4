package kafka

// OffsetFetch (key 9), v0-8. v2+ with null topics returns every committed
// offset of the group; v8 batches groups. Unknown partitions answer -1.

import (
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(9, 0, 8, handleOffsetFetch) }

type fetchedOffset struct {
	topic     string
	partition int32
	c         committed
}

func (s *Server) fetchOffsets(group string, topics map[string][]int32, all bool) ([]fetchedOffset, int16) {
	if !s.isCoordinator(group) {
		return nil, kerr.NotCoordinator.Code
	}
	var out []fetchedOffset
	if all {
		for k, c := range s.groups.offsets.all(group) {
			out = append(out, fetchedOffset{k.topic, k.partition, c})
		}
		sort.Slice(out, func(i, j int) bool {
			if out[i].topic != out[j].topic {
				return out[i].topic < out[j].topic
			}
			return out[i].partition < out[j].partition
		})
		return out, 0
	}
	for t, ps := range topics {
		for _, p := range ps {
			c, ok := s.groups.offsets.fetch(group, tp{t, p})
			if !ok {
				c = committed{offset: -1, epoch: -1}
			}
			out = append(out, fetchedOffset{t, p, c})
		}
	}
	return out, 0
}

func handleOffsetFetch(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.OffsetFetchRequest)
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			want := map[string][]int32{}
			var order []string
			for _, t := range rg.Topics {
				want[t.Topic] = append(want[t.Topic], t.Partitions...)
				order = append(order, t.Topic)
			}
			offs, code := s.fetchOffsets(rg.Group, want, rg.Topics == nil)
			g := kmsg.NewOffsetFetchResponseGroup()
			g.Group, g.ErrorCode = rg.Group, code
			byTopic := map[string]int{}
			for _, o := range offs {
				i, ok := byTopic[o.topic]
				if !ok {
					i = len(g.Topics)
					byTopic[o.topic] = i
					t := kmsg.NewOffsetFetchResponseGroupTopic()
					t.Topic = o.topic
					g.Topics = append(g.Topics, t)
				}
				p := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				p.Partition, p.Offset, p.LeaderEpoch, p.Metadata = o.partition, o.c.offset, o.c.epoch, o.c.metadata
				g.Topics[i].Partitions = append(g.Topics[i].Partitions, p)
			}
			resp.Groups = append(resp.Groups, g)
		}
		return resp
	}
	want := map[string][]int32{}
	for _, t := range req.Topics {
		want[t.Topic] = append(want[t.Topic], t.Partitions...)
	}
	offs, code := s.fetchOffsets(req.Group, want, req.Topics == nil && req.Version >= 2)
	if code != 0 {
		if req.Version >= 2 {
			resp.ErrorCode = code
		}
		// v0-1 carry errors per partition only.
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetFetchResponseTopicPartition()
				rp.Partition, rp.Offset, rp.ErrorCode = p, -1, code
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}
	byTopic := map[string]int{}
	for _, o := range offs {
		i, ok := byTopic[o.topic]
		if !ok {
			i = len(resp.Topics)
			byTopic[o.topic] = i
			t := kmsg.NewOffsetFetchResponseTopic()
			t.Topic = o.topic
			resp.Topics = append(resp.Topics, t)
		}
		p := kmsg.NewOffsetFetchResponseTopicPartition()
		p.Partition, p.Offset, p.LeaderEpoch, p.Metadata = o.partition, o.c.offset, o.c.epoch, o.c.metadata
		if p.Metadata == nil {
			empty := ""
			p.Metadata = &empty
		}
		resp.Topics[i].Partitions = append(resp.Topics[i].Partitions, p)
	}
	return resp
}
