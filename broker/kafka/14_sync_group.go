package kafka

// SyncGroup (key 14), v0-5. The leader's request carries every member's
// assignment; followers park until it arrives. v5 checks protocol type/name.

import "github.com/twmb/franz-go/pkg/kmsg"

func init() { register(14, 0, 5, handleSyncGroup) }

func handleSyncGroup(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	return s.groups.sync(kreq.(*kmsg.SyncGroupRequest))
}
