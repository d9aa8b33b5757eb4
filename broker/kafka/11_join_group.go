package kafka

// JoinGroup (key 11), v0-9. MEMBER_ID_REQUIRED only for v4+ (kafka-go
// loops forever otherwise); static membership (InstanceID) from v5. The
// request parks until the join barrier completes (groups.go).

import "github.com/twmb/franz-go/pkg/kmsg"

func init() { register(11, 0, 9, handleJoinGroup) }

func handleJoinGroup(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	return s.groups.join(cc, kreq.(*kmsg.JoinGroupRequest))
}
