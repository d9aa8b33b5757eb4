package cluster

import (
	"slices"
	"testing"
)

func snapWith(ids []int32, shutting ...int32) *Snapshot {
	s := &Snapshot{ShuttingDown: map[int32]bool{}}
	for _, id := range ids {
		s.Brokers = append(s.Brokers, Broker{ID: id, Incarnation: int64(100 + id)})
	}
	for _, id := range shutting {
		s.ShuttingDown[id] = true
	}
	return s
}

func TestDecide(t *testing.T) {
	reps := []int32{1, 2, 3}
	pm := func(leader int32, isr ...int32) Partition {
		return Partition{Replicas: reps, Leader: leader, LeaderEpoch: 5, ISR: isr, Version: 9, LeaderIncarnation: int64(100 + leader)}
	}
	cases := []struct {
		name     string
		snap     *Snapshot
		p        Partition
		unclean  bool
		rebal    bool
		leader   int32 // -2: no change
		isr      []int32
		epochInc bool
	}{
		{"healthy", snapWith([]int32{1, 2, 3}), pm(1, 1, 2, 3), false, false, -2, nil, false},
		{"leader gone", snapWith([]int32{2, 3}), pm(1, 1, 2, 3), false, false, 2, []int32{2, 3}, true},
		{"follower gone", snapWith([]int32{1, 3}), pm(1, 1, 2, 3), false, false, 1, []int32{1, 3}, false},
		{"leader shutting down", snapWith([]int32{1, 2, 3}, 1), pm(1, 1, 2, 3), false, false, 2, []int32{2, 3}, true},
		{"shutting down, nobody in sync", snapWith([]int32{1, 2, 3}, 1), pm(1, 1), false, false, -2, nil, false},
		{"only out-of-sync left", snapWith([]int32{3}), pm(1, 1, 2), false, false, -1, []int32{1, 2}, true},
		{"unclean", snapWith([]int32{3}), pm(1, 1, 2), true, false, 3, []int32{3}, true},
		{"offline stays offline", snapWith([]int32{3}), Partition{Replicas: reps, Leader: -1, LeaderEpoch: 5, ISR: []int32{1}, Version: 9}, false, false, -2, nil, false},
		{"last ISR member returns", snapWith([]int32{1, 3}), Partition{Replicas: reps, Leader: -1, LeaderEpoch: 5, ISR: []int32{1}, Version: 9}, false, false, 1, []int32{1}, true},
		{"rebalance to preferred", snapWith([]int32{1, 2, 3}), pm(2, 1, 2, 3), false, true, 1, []int32{1, 2, 3}, true},
		{"no rebalance to out-of-sync preferred", snapWith([]int32{1, 2, 3}), pm(2, 2, 3), false, true, -2, nil, false},
	}
	for _, c := range cases {
		next := decide(c.snap, c.p, c.unclean, c.rebal, nil)
		if c.leader == -2 {
			if next != nil {
				t.Errorf("%s: want no change, got %+v", c.name, next)
			}
			continue
		}
		if next == nil {
			t.Errorf("%s: want leader %d, got no change", c.name, c.leader)
			continue
		}
		if next.Leader != c.leader || !sameSet(next.ISR, c.isr) || (next.LeaderEpoch == 6) != c.epochInc {
			t.Errorf("%s: got %+v, want leader %d isr %v epoch bump %v", c.name, next, c.leader, c.isr, c.epochInc)
		}
	}
	// A leader that restarted (new incarnation) is replaced by an in-sync peer.
	s := snapWith([]int32{1, 2, 3})
	p := pm(1, 1, 2, 3)
	p.LeaderIncarnation = 42
	if next := decide(s, p, false, false, nil); next == nil || next.Leader != 2 || next.LeaderEpoch != 6 {
		t.Errorf("bounced leader: %+v", next)
	}
	// ... or re-elected under a new epoch and incarnation when it is the only one in sync.
	p = pm(1, 1)
	p.LeaderIncarnation = 42
	if next := decide(s, p, false, false, nil); next == nil || next.Leader != 1 || next.LeaderIncarnation != 101 {
		t.Errorf("bounced sole leader: %+v", next)
	}
	// A restarted follower leaves the ISR.
	if next := decide(s, pm(1, 1, 2, 3), false, false, map[int32]bool{3: true}); next == nil || slices.Contains(next.ISR, 3) || next.LeaderEpoch != 5 {
		t.Errorf("bounced follower: %+v", next)
	}
}

func TestControlledShutdownDone(t *testing.T) {
	s := snapWith([]int32{1, 2, 3}, 1)
	s.Topics = map[string]*Topic{"t": {Name: "t", Partitions: []Partition{{Replicas: []int32{1, 2, 3}, Leader: 1, ISR: []int32{1, 2}}}}}
	if s.ControlledShutdownDone(1) {
		t.Fatal("leads with a live in-sync peer: not done")
	}
	s.Topics["t"].Partitions[0] = Partition{Replicas: []int32{1, 2, 3}, Leader: 2, ISR: []int32{1, 2}}
	if s.ControlledShutdownDone(1) {
		t.Fatal("still in an ISR led by a live broker: not done")
	}
	s.Topics["t"].Partitions[0] = Partition{Replicas: []int32{1, 2, 3}, Leader: 2, ISR: []int32{2, 3}}
	if !s.ControlledShutdownDone(1) {
		t.Fatal("handed over: done")
	}
}

func TestGroupCoordinatorMovesOnlyLeaversGroups(t *testing.T) {
	all := snapWith([]int32{1, 2, 3})
	less := snapWith([]int32{1, 2, 3}, 3)
	moved := 0
	for i := range 300 {
		g := "group-" + string(rune('a'+i%26)) + string(rune('0'+i/26))
		a, _ := all.GroupCoordinator(g)
		b, _ := less.GroupCoordinator(g)
		if a.ID != 3 && a.ID != b.ID {
			moved++
		}
		if b.ID == 3 {
			t.Fatal("a shutting-down broker coordinates a group")
		}
	}
	if moved != 0 {
		t.Fatalf("%d groups moved off brokers that stayed", moved)
	}
}
