package kafka

// DescribeCluster (key 60), v0-1 (Kafka 2.8+). The admin clients of Kafka
// 2.8+ levels use it instead of Metadata to list brokers and the
// controller (sarama with Version >= 2.8 and no ApiVersions negotiation
// sends it unconditionally). The broker list and controller mirror
// Metadata. Endpoint type 2 (KRaft controllers) is not served by brokers:
// UNSUPPORTED_ENDPOINT_TYPE, as in Kafka. v2 (fenced brokers) is not
// advertised.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(60, 0, 1, handleDescribeCluster) }

func handleDescribeCluster(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		msg := "the broker only describes broker endpoints"
		resp.ErrorMessage = &msg
		return resp
	}
	snap := s.topics.snapshot()
	resp.ClusterID = snap.ClusterID
	for _, b := range snap.Brokers {
		rb := kmsg.NewDescribeClusterResponseBroker()
		rb.NodeID, rb.Host, rb.Port = b.ID, b.Host, b.Port
		if b.Rack != "" {
			rack := b.Rack
			rb.Rack = &rack
		}
		resp.Brokers = append(resp.Brokers, rb)
	}
	resp.ControllerID = snap.Controller
	if resp.ControllerID < 0 && len(snap.Brokers) > 0 {
		resp.ControllerID = snap.Brokers[0].ID
	}
	return resp
}
