package kafka

// Classic consumer group coordinator (JoinGroup / SyncGroup / Heartbeat /
// LeaveGroup, offsets in groups_store.go).
//
// States follow Kafka: Empty -> PreparingRebalance (join barrier: every
// known member must rejoin, or is dropped when the rebalance timeout
// fires) -> CompletingRebalance (the leader got every member's metadata and
// computes the assignment) -> Stable (SyncGroup from the leader handed out
// assignments). Members that miss heartbeats for session.timeout leave and
// trigger a rebalance. JoinGroup v4+ without a member id first gets
// MEMBER_ID_REQUIRED (never for v0-3: kafka-go would loop). Static members
// (group.instance.id, v5+) keep their identity across restarts: a rejoin
// with a known instance id replaces (fences) the old member id.
//
// Group membership lives in memory; a broker restart makes members rejoin
// (UNKNOWN_MEMBER_ID), committed offsets survive it.

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type groupState int8

const (
	stateEmpty groupState = iota
	statePreparing
	stateCompleting
	stateStable
	stateDead
)

func (s groupState) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"}[s]
}

type groupCoordinator struct {
	s       *Server
	offsets offsetBackend

	mu     sync.Mutex
	groups map[string]*group
}

type group struct {
	c  *groupCoordinator
	id string

	mu             sync.Mutex
	state          groupState
	protocolType   string
	protocol       string
	generation     int32
	leader         string
	members        map[string]*member
	order          []string // join order, for picking a leader
	pending        map[string]*time.Timer
	statics        map[string]string // group.instance.id -> member id
	rebalanceTimer *time.Timer
	delaying       bool
}

type member struct {
	id, clientID, clientHost string
	instanceID               *string
	protocolType             string
	protocols                []kmsg.JoinGroupRequestProtocol
	session, rebalance       time.Duration
	assignment               []byte

	joinReq *kmsg.JoinGroupRequest
	joinCh  chan *kmsg.JoinGroupResponse
	syncReq *kmsg.SyncGroupRequest
	syncCh  chan *kmsg.SyncGroupResponse
	expiry  *time.Timer
	seq     uint64 // bumps on each session reset, so stale timers do nothing
}

func newGroupCoordinator(s *Server) (*groupCoordinator, error) {
	if s.coord != nil {
		return &groupCoordinator{s: s, offsets: &coordOffsets{c: s.coord}, groups: map[string]*group{}}, nil
	}
	os, err := openOffsetStore(s.cfg.LogDir)
	if err != nil {
		return nil, err
	}
	return &groupCoordinator{s: s, offsets: os, groups: map[string]*group{}}, nil
}

func (c *groupCoordinator) close() {
	c.mu.Lock()
	for _, g := range c.groups {
		g.mu.Lock()
		for _, m := range g.members {
			if m.expiry != nil {
				m.expiry.Stop()
			}
		}
		if g.rebalanceTimer != nil {
			g.rebalanceTimer.Stop()
		}
		g.mu.Unlock()
	}
	c.mu.Unlock()
	c.offsets.close()
}

func (c *groupCoordinator) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.groups)
}

// expireLoop drops empty groups without offsets from memory.
func (c *groupCoordinator) expireLoop() {
	defer c.s.bg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.mu.Lock()
			for id, g := range c.groups {
				g.mu.Lock()
				if g.state == stateEmpty && len(g.members) == 0 && len(g.pending) == 0 && !c.offsets.hasGroup(id) {
					g.state = stateDead
					delete(c.groups, id)
				}
				g.mu.Unlock()
			}
			c.mu.Unlock()
		case <-c.s.closing:
			return
		}
	}
}

func (c *groupCoordinator) topicDeleted(topic string) {
	if _, ok := c.offsets.(*coordOffsets); ok {
		go c.offsets.deleteTopic(topic) // a coordinator round trip; not under the topic lock
		return
	}
	c.offsets.deleteTopic(topic)
}

func (s *Server) isCoordinator(group string) bool {
	b, ok := s.topics.snapshot().GroupCoordinator(group)
	return ok && b.ID == s.cfg.BrokerID
}

// get returns the group, creating it (Empty) when create is set.
func (c *groupCoordinator) get(id string, create bool) *group {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[id]
	if g == nil && create {
		g = &group{c: c, id: id, members: map[string]*member{}, pending: map[string]*time.Timer{}, statics: map[string]string{}}
		c.groups[id] = g
	}
	return g
}

func newMemberID(clientID string) string {
	var b [16]byte
	rand.Read(b[:])
	return clientID + "-" + hex.EncodeToString(b[:4]) + "-" + hex.EncodeToString(b[4:6]) + "-" + hex.EncodeToString(b[6:8]) + "-" + hex.EncodeToString(b[8:10]) + "-" + hex.EncodeToString(b[10:])
}

// ---- JoinGroup ----

func (c *groupCoordinator) join(cc *clientConn, req *kmsg.JoinGroupRequest) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = -1
	fail := func(code int16) *kmsg.JoinGroupResponse { resp.ErrorCode = code; return resp }
	s := c.s
	if req.Group == "" {
		return fail(kerr.InvalidGroupID.Code)
	}
	if !s.isCoordinator(req.Group) {
		return fail(kerr.NotCoordinator.Code)
	}
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	if session < s.cfg.GroupMinSessionTimeout || session > s.cfg.GroupMaxSessionTimeout {
		return fail(kerr.InvalidSessionTimeout.Code)
	}
	rebalance := session
	if req.Version >= 1 {
		rebalance = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	g := c.get(req.Group, true)
	g.mu.Lock()
	if len(g.members) > 0 {
		if req.ProtocolType != g.protocolType || !g.supportsAny(req.Protocols) {
			g.mu.Unlock()
			return fail(kerr.InconsistentGroupProtocol.Code)
		}
	}
	var m *member
	isNew := false
	switch {
	case req.MemberID == "" && req.InstanceID != nil:
		if old, ok := g.statics[*req.InstanceID]; ok {
			if om := g.members[old]; om != nil {
				g.removeMember(om, kerr.FencedInstanceID.Code)
			}
		}
		m = &member{id: newMemberID(cc.clientID)}
		g.statics[*req.InstanceID] = m.id
		isNew = true
	case req.MemberID == "":
		id := newMemberID(cc.clientID)
		if req.Version >= 4 {
			g.pending[id] = time.AfterFunc(session, func() {
				g.mu.Lock()
				defer g.mu.Unlock()
				if _, ok := g.pending[id]; ok {
					delete(g.pending, id)
					g.tryCompleteJoin()
				}
			})
			g.mu.Unlock()
			resp.MemberID = id
			return fail(kerr.MemberIDRequired.Code)
		}
		m = &member{id: id}
		isNew = true
	default:
		m = g.members[req.MemberID]
		if m == nil {
			t, ok := g.pending[req.MemberID]
			if !ok {
				g.mu.Unlock()
				return fail(kerr.UnknownMemberID.Code)
			}
			t.Stop()
			delete(g.pending, req.MemberID)
			m = &member{id: req.MemberID}
			isNew = true
		} else if req.InstanceID != nil && g.statics[*req.InstanceID] != m.id {
			g.mu.Unlock()
			return fail(kerr.FencedInstanceID.Code)
		}
	}
	changed := isNew || !slices.EqualFunc(m.protocols, req.Protocols, func(a, b kmsg.JoinGroupRequestProtocol) bool {
		return a.Name == b.Name && string(a.Metadata) == string(b.Metadata)
	})
	m.clientID, m.clientHost = cc.clientID, cc.host
	m.instanceID = req.InstanceID
	m.protocolType, m.protocols = req.ProtocolType, req.Protocols
	m.session, m.rebalance = session, rebalance
	if isNew {
		g.members[m.id] = m
		g.order = append(g.order, m.id)
		if len(g.members) == 1 {
			g.protocolType = req.ProtocolType
		}
	}
	if m.joinCh != nil {
		// A duplicate join while one is parked: answer the old one.
		old := m.joinReq.ResponseKind().(*kmsg.JoinGroupResponse)
		old.ErrorCode, old.Generation = kerr.RebalanceInProgress.Code, -1
		m.joinCh <- old
	}
	// A known member rejoining a stable group without changes gets the
	// current generation back (no rebalance), as in Kafka.
	if g.state == stateStable && !changed && m.id != g.leader {
		resp.Generation, resp.LeaderID, resp.MemberID = g.generation, g.leader, m.id
		p := g.protocol
		resp.Protocol = &p
		pt := g.protocolType
		resp.ProtocolType = &pt
		g.resetSession(m)
		g.mu.Unlock()
		return resp
	}
	ch := make(chan *kmsg.JoinGroupResponse, 1)
	m.joinReq, m.joinCh = req, ch
	if m.expiry != nil {
		m.expiry.Stop()
	}
	switch g.state {
	case stateEmpty, stateStable, stateCompleting:
		g.prepareRebalance()
	}
	g.tryCompleteJoin()
	g.mu.Unlock()
	select {
	case r := <-ch:
		return r
	case <-s.closing:
		return fail(kerr.NotCoordinator.Code)
	}
}

func (g *group) supportsAny(ps []kmsg.JoinGroupRequestProtocol) bool {
	for _, p := range ps {
		ok := true
		for _, m := range g.members {
			found := false
			for _, mp := range m.protocols {
				found = found || mp.Name == p.Name
			}
			ok = ok && found
		}
		if ok {
			return true
		}
	}
	return false
}

// prepareRebalance starts the join barrier. Callers hold g.mu.
func (g *group) prepareRebalance() {
	if g.state == stateCompleting {
		for _, m := range g.members {
			if m.syncCh != nil {
				r := m.syncReq.ResponseKind().(*kmsg.SyncGroupResponse)
				r.ErrorCode = kerr.RebalanceInProgress.Code
				m.syncCh <- r
				m.syncCh, m.syncReq = nil, nil
			}
		}
	}
	wasEmpty := g.state == stateEmpty
	g.state = statePreparing
	var timeout time.Duration
	for _, m := range g.members {
		timeout = max(timeout, m.rebalance)
	}
	if g.rebalanceTimer != nil {
		g.rebalanceTimer.Stop()
	}
	delay := *g.c.s.cfg.GroupInitialRebalanceDelay
	if wasEmpty && delay > 0 {
		g.delaying = true
		g.rebalanceTimer = time.AfterFunc(min(delay, timeout), func() {
			g.mu.Lock()
			defer g.mu.Unlock()
			g.delaying = false
			g.tryCompleteJoin()
		})
		return
	}
	g.delaying = false
	g.rebalanceTimer = time.AfterFunc(timeout, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.state == statePreparing {
			g.completeJoin()
		}
	})
}

// tryCompleteJoin finishes the barrier once every member has rejoined.
func (g *group) tryCompleteJoin() {
	if g.state != statePreparing || g.delaying || len(g.pending) > 0 {
		return
	}
	for _, m := range g.members {
		if m.joinCh == nil {
			return
		}
	}
	g.completeJoin()
}

// completeJoin ends the join phase: members that did not rejoin are
// dropped, the generation advances, every parked JoinGroup is answered.
func (g *group) completeJoin() {
	if g.rebalanceTimer != nil {
		g.rebalanceTimer.Stop()
		g.rebalanceTimer = nil
	}
	g.delaying = false
	for _, m := range g.members {
		if m.joinCh == nil {
			g.removeMember(m, kerr.UnknownMemberID.Code)
		}
	}
	g.generation++
	if len(g.members) == 0 {
		g.state = stateEmpty
		g.protocol, g.leader = "", ""
		return
	}
	g.protocol = g.chooseProtocol()
	if _, ok := g.members[g.leader]; !ok {
		g.leader = ""
		for _, id := range g.order {
			if _, ok := g.members[id]; ok {
				g.leader = id
				break
			}
		}
	}
	g.state = stateCompleting
	var all []kmsg.JoinGroupResponseMember
	for _, id := range g.order {
		m := g.members[id]
		if m == nil {
			continue
		}
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID, jm.InstanceID = m.id, m.instanceID
		for _, p := range m.protocols {
			if p.Name == g.protocol {
				jm.ProtocolMetadata = p.Metadata
			}
		}
		all = append(all, jm)
	}
	for _, m := range g.members {
		r := m.joinReq.ResponseKind().(*kmsg.JoinGroupResponse)
		r.Generation, r.LeaderID, r.MemberID = g.generation, g.leader, m.id
		p, pt := g.protocol, g.protocolType
		r.Protocol, r.ProtocolType = &p, &pt
		if m.id == g.leader {
			r.Members = all
		}
		m.joinCh <- r
		m.joinCh, m.joinReq = nil, nil
		g.resetSession(m)
	}
}

// chooseProtocol picks the protocol all members support with the most
// first-choice votes, as Kafka does.
func (g *group) chooseProtocol() string {
	votes := map[string]int{}
	var candidates []string
	for _, m := range g.members {
		for _, p := range m.protocols {
			all := true
			for _, o := range g.members {
				found := false
				for _, op := range o.protocols {
					found = found || op.Name == p.Name
				}
				all = all && found
			}
			if all && !slices.Contains(candidates, p.Name) {
				candidates = append(candidates, p.Name)
			}
		}
	}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if slices.Contains(candidates, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	sort.Strings(candidates)
	best := ""
	for _, c := range candidates {
		if best == "" || votes[c] > votes[best] {
			best = c
		}
	}
	return best
}

// removeMember drops a member, answering its parked requests with code.
func (g *group) removeMember(m *member, code int16) {
	if m.joinCh != nil {
		r := m.joinReq.ResponseKind().(*kmsg.JoinGroupResponse)
		r.ErrorCode, r.Generation = code, -1
		m.joinCh <- r
		m.joinCh, m.joinReq = nil, nil
	}
	if m.syncCh != nil {
		r := m.syncReq.ResponseKind().(*kmsg.SyncGroupResponse)
		r.ErrorCode = code
		m.syncCh <- r
		m.syncCh, m.syncReq = nil, nil
	}
	if m.expiry != nil {
		m.expiry.Stop()
	}
	m.seq++
	if m.instanceID != nil && g.statics[*m.instanceID] == m.id {
		delete(g.statics, *m.instanceID)
	}
	delete(g.members, m.id)
	g.order = slices.DeleteFunc(g.order, func(id string) bool { return id == m.id })
}

// memberGone reacts to a member leaving or expiring.
func (g *group) memberGone() {
	switch g.state {
	case stateStable, stateCompleting:
		if len(g.members) == 0 {
			g.state = stateEmpty
			g.generation++
			g.protocol, g.leader = "", ""
			return
		}
		g.prepareRebalance()
	case statePreparing:
		g.tryCompleteJoin()
		if len(g.members) == 0 && g.state == statePreparing && len(g.pending) == 0 {
			g.completeJoin()
		}
	}
}

// resetSession restarts a member's session timer. Callers hold g.mu.
func (g *group) resetSession(m *member) {
	if m.expiry != nil {
		m.expiry.Stop()
	}
	m.seq++
	seq := m.seq
	m.expiry = time.AfterFunc(m.session, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.members[m.id] != m || m.seq != seq || m.joinCh != nil {
			return
		}
		g.c.s.log.Debug("group member session expired", "group", g.id, "member", m.id)
		g.removeMember(m, kerr.UnknownMemberID.Code)
		g.memberGone()
	})
}

// ---- SyncGroup ----

func (c *groupCoordinator) sync(req *kmsg.SyncGroupRequest) *kmsg.SyncGroupResponse {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	fail := func(code int16) *kmsg.SyncGroupResponse { resp.ErrorCode = code; return resp }
	if !c.s.isCoordinator(req.Group) {
		return fail(kerr.NotCoordinator.Code)
	}
	g := c.get(req.Group, false)
	if g == nil {
		return fail(kerr.UnknownMemberID.Code)
	}
	g.mu.Lock()
	m := g.members[req.MemberID]
	switch {
	case m == nil:
		g.mu.Unlock()
		return fail(kerr.UnknownMemberID.Code)
	case req.InstanceID != nil && g.statics[*req.InstanceID] != m.id:
		g.mu.Unlock()
		return fail(kerr.FencedInstanceID.Code)
	case req.Generation != g.generation:
		g.mu.Unlock()
		return fail(kerr.IllegalGeneration.Code)
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType, req.Protocol != nil && *req.Protocol != g.protocol:
		g.mu.Unlock()
		return fail(kerr.InconsistentGroupProtocol.Code)
	}
	pt, p := g.protocolType, g.protocol
	resp.ProtocolType, resp.Protocol = &pt, &p
	switch g.state {
	case statePreparing:
		g.mu.Unlock()
		return fail(kerr.RebalanceInProgress.Code)
	case stateStable:
		resp.MemberAssignment = m.assignment
		g.resetSession(m)
		g.mu.Unlock()
		return resp
	case stateCompleting:
	default:
		g.mu.Unlock()
		return fail(kerr.UnknownMemberID.Code)
	}
	ch := make(chan *kmsg.SyncGroupResponse, 1)
	if m.syncCh != nil {
		old := m.syncReq.ResponseKind().(*kmsg.SyncGroupResponse)
		old.ErrorCode = kerr.RebalanceInProgress.Code
		m.syncCh <- old
	}
	m.syncReq, m.syncCh = req, ch
	g.resetSession(m)
	if m.id == g.leader {
		given := map[string][]byte{}
		for _, a := range req.GroupAssignment {
			given[a.MemberID] = a.MemberAssignment
		}
		for _, gm := range g.members {
			gm.assignment = given[gm.id]
		}
		g.state = stateStable
		for _, gm := range g.members {
			if gm.syncCh != nil {
				r := gm.syncReq.ResponseKind().(*kmsg.SyncGroupResponse)
				r.ProtocolType, r.Protocol = &pt, &p
				r.MemberAssignment = gm.assignment
				gm.syncCh <- r
				gm.syncCh, gm.syncReq = nil, nil
			}
		}
	}
	g.mu.Unlock()
	select {
	case r := <-ch:
		return r
	case <-c.s.closing:
		return fail(kerr.NotCoordinator.Code)
	}
}

// ---- Heartbeat ----

func (c *groupCoordinator) heartbeat(req *kmsg.HeartbeatRequest) int16 {
	if !c.s.isCoordinator(req.Group) {
		return kerr.NotCoordinator.Code
	}
	g := c.get(req.Group, false)
	if g == nil {
		return kerr.UnknownMemberID.Code
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.members[req.MemberID]
	switch {
	case m == nil:
		return kerr.UnknownMemberID.Code
	case req.InstanceID != nil && g.statics[*req.InstanceID] != m.id:
		return kerr.FencedInstanceID.Code
	case req.Generation != g.generation:
		return kerr.IllegalGeneration.Code
	}
	if m.joinCh == nil {
		g.resetSession(m)
	}
	if g.state == statePreparing {
		return kerr.RebalanceInProgress.Code
	}
	return 0
}

// ---- LeaveGroup ----

type leaving struct {
	memberID   string
	instanceID *string
}

func (c *groupCoordinator) leave(group string, who []leaving) (int16, []int16) {
	codes := make([]int16, len(who))
	if !c.s.isCoordinator(group) {
		return kerr.NotCoordinator.Code, codes
	}
	g := c.get(group, false)
	if g == nil {
		for i := range codes {
			codes[i] = kerr.UnknownMemberID.Code
		}
		return 0, codes
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	gone := false
	for i, w := range who {
		id := w.memberID
		if w.instanceID != nil {
			sid, ok := g.statics[*w.instanceID]
			if !ok {
				codes[i] = kerr.UnknownMemberID.Code
				continue
			}
			if id != "" && id != sid {
				codes[i] = kerr.FencedInstanceID.Code
				continue
			}
			id = sid
		}
		if t, ok := g.pending[id]; ok {
			t.Stop()
			delete(g.pending, id)
			gone = true
			continue
		}
		m := g.members[id]
		if m == nil {
			codes[i] = kerr.UnknownMemberID.Code
			continue
		}
		g.removeMember(m, kerr.UnknownMemberID.Code)
		gone = true
	}
	if gone {
		g.memberGone()
	}
	return 0, codes
}
