package kafka

// FindCoordinator (key 10), v0-4. v4 batches keys (Java, franz-go); v0 is
// needed by kafka-go and old librdkafka.
//
// The group coordinator is hash(group) over the registered brokers (see
// cluster.Snapshot.GroupCoordinator), so every broker gives the same answer
// for the same broker list. Transaction coordinators (key type 1) are not
// offered: transactions are not implemented.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(10, 0, 4, handleFindCoordinator) }

func handleFindCoordinator(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	snap := s.topics.snapshot()
	find := func(key string) (int32, string, int32, int16) {
		if req.CoordinatorType != 0 {
			return -1, "", -1, kerr.TransactionalIDAuthorizationFailed.Code
		}
		if key == "" && req.Version < 4 {
			return -1, "", -1, kerr.InvalidGroupID.Code
		}
		b, ok := snap.GroupCoordinator(key)
		if !ok {
			return -1, "", -1, kerr.CoordinatorNotAvailable.Code
		}
		return b.ID, b.Host, b.Port, 0
	}
	if req.Version >= 4 {
		for _, key := range req.CoordinatorKeys {
			c := kmsg.NewFindCoordinatorResponseCoordinator()
			c.Key = key
			c.NodeID, c.Host, c.Port, c.ErrorCode = find(key)
			resp.Coordinators = append(resp.Coordinators, c)
		}
		return resp
	}
	resp.NodeID, resp.Host, resp.Port, resp.ErrorCode = find(req.CoordinatorKey)
	return resp
}
