package kafka

// DeleteTopics (key 20), v0-6. v6 (Kafka 2.8+, sent by sarama configured
// for 2.8+ without ApiVersions negotiation) names topics by name or id.
// The topic leaves the metadata store at once; each broker deletes its
// partition directories when it sees the change (topics.go reconcile).

import (
	"context"
	"errors"

	"github.com/drover/drover/broker/cluster"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(20, 0, 6, handleDeleteTopics) }

func handleDeleteTopics(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	names := req.TopicNames
	var ids [][16]byte
	if req.Version >= 6 {
		names = nil
		snap := s.store.Snapshot()
		for _, t := range req.Topics {
			switch {
			case t.Topic != nil && *t.Topic != "":
				names = append(names, *t.Topic)
				ids = append(ids, [16]byte{})
			case snap.TopicByID(t.TopicID) != nil:
				names = append(names, snap.TopicByID(t.TopicID).Name)
				ids = append(ids, t.TopicID)
			default:
				st := kmsg.NewDeleteTopicsResponseTopic()
				st.TopicID = t.TopicID
				st.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, st)
			}
		}
	}
	for i, name := range names {
		st := kmsg.NewDeleteTopicsResponseTopic()
		n := name
		st.Topic = &n
		if req.Version >= 6 {
			st.TopicID = ids[i]
			if t := s.store.Snapshot().Topics[name]; t != nil {
				st.TopicID = t.ID
			}
		}
		var err error
		if name == offsetsTopic {
			st.ErrorCode = kerr.TopicAuthorizationFailed.Code
		} else if err = s.store.DeleteTopic(context.Background(), name); errors.Is(err, cluster.ErrUnknownTopic) {
			st.ErrorCode = kerr.UnknownTopicOrPartition.Code
		} else if err != nil {
			st.ErrorCode = kerr.UnknownServerError.Code
			if req.Version >= 5 {
				msg := err.Error()
				st.ErrorMessage = &msg
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	s.topics.reconcile()
	return resp
}
