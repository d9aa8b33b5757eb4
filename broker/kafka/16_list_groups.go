package kafka

// ListGroups (key 16), v0-4 (v4 filters by state). Lists the groups this
// broker coordinates, including groups that only have committed offsets.

import (
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(16, 0, 4, handleListGroups) }

func handleListGroups(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.ListGroupsRequest)
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	seen := map[string]bool{}
	add := func(id, ptype, state string) {
		if seen[id] {
			return
		}
		seen[id] = true
		if len(req.StatesFilter) > 0 && !slices.ContainsFunc(req.StatesFilter, func(f string) bool { return strings.EqualFold(f, state) }) {
			return
		}
		g := kmsg.NewListGroupsResponseGroup()
		g.Group, g.ProtocolType, g.GroupState = id, ptype, state
		resp.Groups = append(resp.Groups, g)
	}
	s.groups.mu.Lock()
	groups := make([]*group, 0, len(s.groups.groups))
	for _, g := range s.groups.groups {
		groups = append(groups, g)
	}
	s.groups.mu.Unlock()
	for _, g := range groups {
		g.mu.Lock()
		st, pt := g.state, g.protocolType
		g.mu.Unlock()
		if st == stateDead || (st == stateEmpty && pt == "" && !s.groups.offsets.hasGroup(g.id)) {
			continue
		}
		if pt == "" {
			pt = "consumer"
		}
		add(g.id, pt, st.String())
	}
	for _, id := range s.groups.offsets.groups() {
		add(id, "consumer", "Empty")
	}
	return resp
}
