package kafka

// LeaveGroup (key 13), v0-4. v0-2 name one member; v3+ a batch of members
// (by member id and/or group.instance.id) with per-member errors.

import "github.com/twmb/franz-go/pkg/kmsg"

func init() { register(13, 0, 4, handleLeaveGroup) }

func handleLeaveGroup(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.LeaveGroupRequest)
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if req.Version < 3 {
		code, codes := s.groups.leave(req.Group, []leaving{{memberID: req.MemberID}})
		resp.ErrorCode = code
		if code == 0 {
			resp.ErrorCode = codes[0]
		}
		return resp
	}
	who := make([]leaving, len(req.Members))
	for i, m := range req.Members {
		who[i] = leaving{m.MemberID, m.InstanceID}
	}
	code, codes := s.groups.leave(req.Group, who)
	resp.ErrorCode = code
	if code != 0 {
		return resp
	}
	for i, m := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID, rm.ErrorCode = m.MemberID, m.InstanceID, codes[i]
		resp.Members = append(resp.Members, rm)
	}
	return resp
}
