package kafka

// DescribeGroups (key 15), v0-5. Unknown groups answer state "Dead" with
// no error, as Kafka does.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(15, 0, 5, handleDescribeGroups) }

func handleDescribeGroups(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.DescribeGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range req.Groups {
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group = id
		rg.AuthorizedOperations = -2147483648
		if !s.isCoordinator(id) {
			rg.ErrorCode = kerr.NotCoordinator.Code
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		g := s.groups.get(id, false)
		if g == nil {
			rg.State = "Dead"
			if s.groups.offsets.hasGroup(id) {
				rg.State = "Empty"
				rg.ProtocolType = "consumer"
			}
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		g.mu.Lock()
		rg.State = g.state.String()
		rg.ProtocolType = g.protocolType
		if g.state == stateStable || g.state == stateCompleting {
			rg.Protocol = g.protocol
		}
		for _, id := range g.order {
			m := g.members[id]
			if m == nil {
				continue
			}
			dm := kmsg.NewDescribeGroupsResponseGroupMember()
			dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
			if g.state == stateStable {
				for _, p := range m.protocols {
					if p.Name == g.protocol {
						dm.ProtocolMetadata = p.Metadata
					}
				}
				dm.MemberAssignment = m.assignment
			}
			rg.Members = append(rg.Members, dm)
		}
		g.mu.Unlock()
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}
