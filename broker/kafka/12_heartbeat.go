package kafka

// Heartbeat (key 12), v0-4. Resets the member's session timer; answers
// REBALANCE_IN_PROGRESS while the group waits for members to rejoin.

import "github.com/twmb/franz-go/pkg/kmsg"

func init() { register(12, 0, 4, handleHeartbeat) }

func handleHeartbeat(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.HeartbeatRequest)
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	resp.ErrorCode = s.groups.heartbeat(req)
	return resp
}
