package kafka

// DeleteGroups (key 42), v0-2. Only groups without members can go
// (NON_EMPTY_GROUP otherwise); their committed offsets go with them.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(42, 0, 2, handleDeleteGroups) }

func handleDeleteGroups(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = id
		rg.ErrorCode = s.groups.deleteGroup(id)
		resp.Groups = append(resp.Groups, rg)
	}
	return resp
}

func (c *groupCoordinator) deleteGroup(id string) int16 {
	if !c.s.isCoordinator(id) {
		return kerr.NotCoordinator.Code
	}
	c.mu.Lock()
	g := c.groups[id]
	if g != nil {
		g.mu.Lock()
		if len(g.members) > 0 || len(g.pending) > 0 {
			g.mu.Unlock()
			c.mu.Unlock()
			return kerr.NonEmptyGroup.Code
		}
		g.state = stateDead
		g.mu.Unlock()
		delete(c.groups, id)
	}
	c.mu.Unlock()
	if g == nil && !c.offsets.hasGroup(id) {
		return kerr.GroupIDNotFound.Code
	}
	if err := c.offsets.deleteGroup(id); err != nil {
		return kerr.UnknownServerError.Code
	}
	return 0
}
