package cluster

// The controller: one broker, elected through the coordinator
// (/drover/controller, etcd election; its revision is the controller epoch
// and fences every write), keeps partition leadership in line with the
// live brokers, like Kafka's ZooKeeper-mode controller:
//
//   - a leader whose registration vanished, that is in controlled shutdown,
//     or that restarted (its registration incarnation differs from the one it
//     was elected with) is replaced by the first live ISR member in replica
//     order, with the leader epoch bumped; never by an out-of-sync replica
//     unless unclean.leader.election.enable. With nobody eligible the
//     partition goes offline (leader -1) keeping its last ISR, so only those
//     replicas can lead it again; a shutting-down leader with nobody to hand
//     over to keeps leading until it stops.
//   - followers that vanished, are shutting down or restarted leave the
//     ISR (the leader adds them back once caught up).
//   - preferred-leader rebalance (auto.leader.rebalance.enable): leadership
//     moves back to replicas[0] once it is live and in the ISR.
//
// Every write is a compare-and-set on the partition state's version and on
// still holding the election. Brokers watch the states and become leader
// or follower accordingly.

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/drover/drover/broker/coordclient"
)

// ControllerConfig tunes RunController.
type ControllerConfig struct {
	// Unclean is unclean.leader.election.enable's broker default; a topic config overrides it.
	Unclean bool
	// Rebalance moves leadership back to the preferred replica (auto.leader.rebalance.enable).
	Rebalance bool
	// RebalanceInterval is leader.imbalance.check.interval.seconds.
	RebalanceInterval time.Duration
	Logger            *slog.Logger
}

type tpKey struct {
	topic string
	p     int32
}

type controller struct {
	c       *Coord
	lead    *coordclient.Leadership
	cfg     ControllerConfig
	log     *slog.Logger
	seen    map[int32]int64          // broker -> incarnation last seen
	removeQ map[tpKey]map[int32]bool // restarted followers still to take out of an ISR
}

// RunController campaigns for the controller role and acts while holding
// it, until ctx ends (then it resigns, so another broker takes over at once).
func (c *Coord) RunController(ctx context.Context, cfg ControllerConfig) {
	if cfg.Logger == nil {
		cfg.Logger = c.log
	}
	if cfg.RebalanceInterval <= 0 {
		cfg.RebalanceInterval = 10 * time.Second
	}
	for ctx.Err() == nil {
		lead, err := c.cli.Campaign(ctx, controllerKey, []byte(strconv.Itoa(int(c.self))), c.TTL)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			cfg.Logger.Warn("controller campaign", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		cfg.Logger.Info("elected controller", "broker.id", c.self, "controller.epoch", lead.Rev())
		ctl := &controller{c: c, lead: lead, cfg: cfg, log: cfg.Logger, seen: map[int32]int64{}, removeQ: map[tpKey]map[int32]bool{}}
		ctl.run(ctx)
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		lead.Resign(rctx)
		cancel()
	}
}

func (ctl *controller) run(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	lastRebalance := time.Now()
	first := true
	for {
		ch := ctl.c.Changed()
		snap := ctl.c.Snapshot()
		rebalance := ctl.cfg.Rebalance && time.Since(lastRebalance) >= ctl.cfg.RebalanceInterval
		if rebalance {
			lastRebalance = time.Now()
		}
		ctl.noteBounces(snap, first)
		first = false
		ctl.act(ctx, snap, rebalance)
		select {
		case <-ch:
		case <-tick.C:
		case <-ctl.lead.Done():
			ctl.log.Warn("lost controller leadership")
			return
		case <-ctx.Done():
			return
		}
	}
}

// noteBounces finds brokers that re-registered (restarted faster than their
// old registration expired) and queues their removal from ISRs they follow in.
func (ctl *controller) noteBounces(snap *Snapshot, first bool) {
	now := map[int32]int64{}
	for _, b := range snap.Brokers {
		now[b.ID] = b.Incarnation
		if old, ok := ctl.seen[b.ID]; ok && !first && old != b.Incarnation {
			ctl.log.Info("broker restarted", "broker.id", b.ID)
			for name, t := range snap.Topics {
				for _, pm := range t.Partitions {
					if pm.Leader != b.ID && slices.Contains(pm.ISR, b.ID) {
						k := tpKey{name, pm.Index}
						if ctl.removeQ[k] == nil {
							ctl.removeQ[k] = map[int32]bool{}
						}
						ctl.removeQ[k][b.ID] = true
					}
				}
			}
		}
	}
	ctl.seen = now
}

func (ctl *controller) act(ctx context.Context, snap *Snapshot, rebalance bool) {
	for name, t := range snap.Topics {
		unclean := ctl.cfg.Unclean
		if v, ok := t.Configs["unclean.leader.election.enable"]; ok {
			unclean = v == "true"
		}
		for _, pm := range t.Partitions {
			if pm.Version == 0 || len(pm.Replicas) == 0 {
				continue
			}
			k := tpKey{name, pm.Index}
			next := decide(snap, pm, unclean, rebalance, ctl.removeQ[k])
			if next == nil {
				delete(ctl.removeQ, k)
				continue
			}
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := ctl.c.writeState(wctx, ctl.lead, name, pm.Index, *next, pm.Version)
			cancel()
			switch {
			case err == nil:
				delete(ctl.removeQ, k)
				ctl.log.Info("partition state", "topic", name, "partition", pm.Index, "leader", next.Leader, "leader_epoch", next.LeaderEpoch, "isr", next.ISR)
			case errors.Is(err, ErrStaleState):
				// Changed meanwhile: the watch brings the new state and we look again.
			default:
				ctl.log.Warn("controller write", "topic", name, "partition", pm.Index, "err", err)
				return
			}
		}
	}
}

// decide returns the partition's next state, or nil when it is fine.
func decide(snap *Snapshot, pm Partition, unclean, rebalance bool, remove map[int32]bool) *PartitionState {
	reg := func(id int32) bool { _, ok := snap.Broker(id); return ok }
	inc := func(id int32) int64 { b, _ := snap.Broker(id); return b.Incarnation }
	live := snap.Live
	var isr []int32
	for _, r := range pm.ISR {
		if reg(r) && !snap.ShuttingDown[r] && !remove[r] {
			isr = append(isr, r)
		}
	}
	leaderOK := pm.Leader >= 0 && live(pm.Leader) && (pm.LeaderIncarnation == 0 || pm.LeaderIncarnation == inc(pm.Leader))
	withLeader := func(l int32, set []int32) []int32 {
		if slices.Contains(set, l) {
			return set
		}
		return append([]int32{l}, set...)
	}
	if !leaderOK {
		cand := int32(-1)
		for _, r := range pm.Replicas {
			if r != pm.Leader && slices.Contains(pm.ISR, r) && live(r) && !remove[r] {
				cand = r
				break
			}
		}
		if cand < 0 && pm.Leader >= 0 && live(pm.Leader) && slices.Contains(pm.ISR, pm.Leader) {
			// The leader restarted and is the only in-sync replica left: it
			// leads again, under a new epoch.
			cand = pm.Leader
		}
		newISR := isr
		if cand < 0 && unclean {
			for _, r := range pm.Replicas {
				if live(r) {
					cand, newISR = r, []int32{r}
					break
				}
			}
		}
		if cand < 0 {
			if pm.Leader >= 0 && reg(pm.Leader) && snap.ShuttingDown[pm.Leader] {
				return nil // nobody to hand over to: it leads until it stops
			}
			if pm.Leader == -1 {
				return nil
			}
			return &PartitionState{Leader: -1, LeaderEpoch: pm.LeaderEpoch + 1, ISR: pm.ISR}
		}
		return &PartitionState{Leader: cand, LeaderEpoch: pm.LeaderEpoch + 1, ISR: withLeader(cand, newISR), LeaderIncarnation: inc(cand)}
	}
	isr = withLeader(pm.Leader, isr)
	if pref := pm.Replicas[0]; rebalance && pref != pm.Leader && live(pref) && slices.Contains(isr, pref) {
		return &PartitionState{Leader: pref, LeaderEpoch: pm.LeaderEpoch + 1, ISR: isr, LeaderIncarnation: inc(pref)}
	}
	if !sameSet(isr, pm.ISR) {
		return &PartitionState{Leader: pm.Leader, LeaderEpoch: pm.LeaderEpoch, ISR: isr, LeaderIncarnation: pm.LeaderIncarnation}
	}
	return nil
}

func sameSet(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// ControlledShutdownDone reports whether broker id, in controlled shutdown,
// has handed over everything it can: it leads no partition that has another
// live in-sync replica, and is in no ISR led by another live broker.
func (s *Snapshot) ControlledShutdownDone(id int32) bool {
	for _, t := range s.Topics {
		for _, pm := range t.Partitions {
			if !slices.Contains(pm.ISR, id) {
				continue
			}
			if pm.Leader == id {
				for _, r := range pm.ISR {
					if r != id && s.Live(r) {
						return false
					}
				}
			} else if s.Live(pm.Leader) {
				return false
			}
		}
	}
	return true
}
