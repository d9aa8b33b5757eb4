package kafka

// DeleteTopics (key 20), v0-5 (names only; v6 topic ids not advertised).
// The topic leaves the metadata store at once; each broker deletes its
// partition directories when it sees the change (topics.go reconcile).

import (
	"context"
	"errors"

	"github.com/drover/drover/broker/cluster"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(20, 0, 5, handleDeleteTopics) }

func handleDeleteTopics(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	names := req.TopicNames
	if req.Version >= 6 {
		names = nil
		for _, t := range req.Topics {
			if t.Topic != nil {
				names = append(names, *t.Topic)
			}
		}
	}
	for _, name := range names {
		st := kmsg.NewDeleteTopicsResponseTopic()
		n := name
		st.Topic = &n
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
