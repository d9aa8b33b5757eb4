package kafka

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/drover/drover/broker/cluster"
	"github.com/drover/drover/broker/coordclient/coordtest"
)

// tcluster is an in-process cluster: 3 coordinators and n brokers that can
// be stopped, killed and restarted on their own log dirs and ports.
type tcluster struct {
	t     *testing.T
	eps   []string
	nodes []*tnode
	mod   func(*Config)
}

type tnode struct {
	id   int32
	dir  string
	addr string
	s    *Server
}

const testTTL = 2 * time.Second

func startTestCluster(t *testing.T, n int, mod func(*Config)) *tcluster {
	t.Helper()
	c := &tcluster{t: t, eps: coordtest.Start(t, 3), mod: mod}
	for i := range n {
		nd := &tnode{id: int32(i + 1), dir: t.TempDir(), addr: "127.0.0.1:0"}
		c.nodes = append(c.nodes, nd)
		c.start(i)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if nd.s != nil {
				nd.s.kill()
			}
		}
	})
	c.waitFor("all brokers registered", func() bool {
		for _, nd := range c.nodes {
			if nd.s == nil || len(nd.s.store.Snapshot().LiveBrokers()) != n {
				return false
			}
		}
		return true
	})
	return c
}

func (c *tcluster) start(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := cluster.OpenCoord(ctx, c.eps, nd.id, testLogger())
	if err != nil {
		c.t.Fatal(err)
	}
	st.TTL = testTTL
	zero := time.Duration(0)
	cfg := Config{BrokerID: nd.id, Listen: nd.addr, LogDir: nd.dir, Store: st, GroupInitialRebalanceDelay: &zero,
		Logger: testLogger(), NumPartitions: 3, DefaultReplicationFactor: 3, MinInsyncReplicas: 2,
		ReplicaLagTimeMax: 1500 * time.Millisecond, LeaderImbalanceCheckInterval: time.Second}
	if c.mod != nil {
		c.mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	// The port may still be held for a moment by the previous incarnation.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err = s.Start(context.Background())
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	nd.s, nd.addr = s, s.Addr()
}

func (c *tcluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *tcluster) seeds() []string {
	var out []string
	for _, nd := range c.nodes {
		out = append(out, nd.addr)
	}
	return out
}

// any returns a running broker.
func (c *tcluster) any() *Server {
	for _, nd := range c.nodes {
		if nd.s != nil {
			return nd.s
		}
	}
	return nil
}

// fullySynced: every partition of topic has a live leader and a full ISR,
// as seen by every running broker.
func (c *tcluster) fullySynced(topic string) bool {
	for _, nd := range c.nodes {
		if nd.s == nil {
			return false
		}
		snap := nd.s.store.Snapshot()
		t := snap.Topics[topic]
		if t == nil {
			return false
		}
		for _, pm := range t.Partitions {
			if !snap.Live(pm.Leader) || len(pm.ISR) != len(pm.Replicas) {
				return false
			}
		}
	}
	return true
}

func (c *tcluster) createTopic(topic string, parts int32, rf int16) {
	c.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...))
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, parts, rf
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		c.t.Fatal(err)
	}
	c.waitFor("topic in sync", func() bool { return c.fullySynced(topic) })
}

// workload is an idempotent acks=all producer writing continuously; it
// records every acknowledged record and the longest gap between acks.
type workload struct {
	t     *testing.T
	cl    *kgo.Client
	topic string

	mu       sync.Mutex
	acked    map[string]ackedRec // value -> where it was acked
	lastAck  time.Time
	maxStall time.Duration
	stallAt  time.Time
	errs     map[string]int
	sent     int

	stop chan struct{}
	done chan struct{}
}

type ackedRec struct {
	partition int32
	offset    int64
}

func startWorkload(t *testing.T, c *tcluster, topic string) *workload {
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.MetadataMinAge(100*time.Millisecond), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	w := &workload{t: t, cl: cl, topic: topic, acked: map[string]ackedRec{}, errs: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{})}
	w.lastAck = time.Now()
	go w.run()
	return w
}

func (w *workload) run() {
	defer close(w.done)
	sem := make(chan struct{}, 64)
	for i := 0; ; i++ {
		select {
		case <-w.stop:
			w.cl.Flush(context.Background())
			return
		case sem <- struct{}{}:
		}
		v := strconv.Itoa(i)
		w.mu.Lock()
		w.sent++
		w.mu.Unlock()
		w.cl.Produce(context.Background(), &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
			<-sem
			now := time.Now()
			w.mu.Lock()
			defer w.mu.Unlock()
			if err != nil {
				w.errs[err.Error()]++
				return
			}
			if _, dup := w.acked[v]; dup {
				w.errs["acked twice"]++
			}
			w.acked[v] = ackedRec{r.Partition, r.Offset}
			if gap := now.Sub(w.lastAck); gap > w.maxStall {
				w.maxStall, w.stallAt = gap, now
			}
			w.lastAck = now
		})
		if i%8 == 7 {
			time.Sleep(time.Millisecond) // a steady stream, not a flood
		}
	}
}

// resetStall starts stall measurement afresh (after warm-up).
func (w *workload) resetStall() {
	w.mu.Lock()
	w.maxStall, w.lastAck = 0, time.Now()
	w.mu.Unlock()
}

func (w *workload) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// waitProgress waits until n more records are acked.
func (w *workload) waitProgress(c *tcluster, n int) {
	start := w.ackedCount()
	c.waitFor(fmt.Sprintf("%d more acks", n), func() bool { return w.ackedCount() >= start+n })
}

// finish stops producing and verifies with a fresh consumer that every
// acknowledged record is in the log exactly once, at its acked offset, in
// order, and that no value appears twice.
func (w *workload) finish(c *tcluster, label string) {
	t := w.t
	close(w.stop)
	<-w.done
	w.cl.Close()
	w.mu.Lock()
	defer w.mu.Unlock()
	t.Logf("%s: sent %d, acked %d, longest produce stall %v, producer errors %v", label, w.sent, len(w.acked), w.maxStall.Round(time.Millisecond), w.errs)
	if w.errs["acked twice"] > 0 {
		t.Errorf("%s: records acked twice", label)
	}
	// Read everything up to the current high watermarks.
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.ConsumeTopics(w.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := map[int32]int64{} // partition -> end (highest acked offset + 1)
	for _, a := range w.acked {
		want[a.partition] = max(want[a.partition], a.offset+1)
	}
	seen := map[string]ackedRec{}
	next := map[int32]int64{}
	dups := 0
	for {
		done := true
		for p, end := range want {
			if next[p] < end {
				done = false
			}
		}
		if done {
			break
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s: consuming timed out at %v, want %v", label, next, want)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("%s: consume %s/%d: %v", label, topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset < next[r.Partition] {
				t.Errorf("%s: partition %d went back from %d to %d", label, r.Partition, next[r.Partition], r.Offset)
			}
			next[r.Partition] = r.Offset + 1
			v := string(r.Value)
			if _, ok := seen[v]; ok {
				dups++
			}
			seen[v] = ackedRec{r.Partition, r.Offset}
		})
	}
	lost := 0
	moved := 0
	for v, a := range w.acked {
		got, ok := seen[v]
		switch {
		case !ok:
			lost++
		case got != a:
			moved++
		}
	}
	t.Logf("%s: consumed %d distinct records; lost %d, duplicated %d, at another offset than acked %d", label, len(seen), lost, dups, moved)
	if lost > 0 || dups > 0 || moved > 0 {
		t.Errorf("%s: %d acknowledged records lost, %d duplicated, %d moved", label, lost, dups, moved)
	}
}

func leaderOf(s *Server, topic string, p int32) int32 {
	t := s.store.Snapshot().Topics[topic]
	if t == nil {
		return -1
	}
	return t.Partitions[p].Leader
}

// (b) each broker in turn stopped gracefully and restarted.
func TestReplicationRollingRestart(t *testing.T) {
	c := startTestCluster(t, 3, nil)
	c.createTopic("roll", 3, 3)
	w := startWorkload(t, c, "roll")
	w.waitProgress(c, 500)
	w.resetStall()
	// Controller last, like the provisioner.
	order := []int{0, 1, 2}
	ctl := c.any().store.Snapshot().Controller
	slices.SortStableFunc(order, func(a, b int) int {
		ka, kb := 0, 0
		if c.nodes[a].id == ctl {
			ka = 1
		}
		if c.nodes[b].id == ctl {
			kb = 1
		}
		return ka - kb
	})
	for _, i := range order {
		nd := c.nodes[i]
		start := time.Now()
		if err := nd.s.Stop(); err != nil {
			t.Logf("stop broker %d: %v", nd.id, err)
		}
		nd.s = nil
		t.Logf("broker %d stopped gracefully in %v", nd.id, time.Since(start).Round(time.Millisecond))
		w.waitProgress(c, 200)
		c.start(i)
		c.waitFor("back in sync", func() bool { return c.fullySynced("roll") })
		t.Logf("broker %d back in sync %v after stop", nd.id, time.Since(start).Round(time.Millisecond))
		w.waitProgress(c, 200)
	}
	// Leadership goes back to the preferred replicas.
	c.waitFor("preferred leaders", func() bool {
		t := c.any().store.Snapshot().Topics["roll"]
		for _, pm := range t.Partitions {
			if pm.Leader != pm.Replicas[0] {
				return false
			}
		}
		return true
	})
	w.waitProgress(c, 200)
	w.finish(c, "(b) rolling restart")
}

// (a) the leader killed without a graceful stop, later restarted.
func TestReplicationKillLeader(t *testing.T) {
	c := startTestCluster(t, 3, nil)
	c.createTopic("kill", 3, 3)
	w := startWorkload(t, c, "kill")
	w.waitProgress(c, 500)
	w.resetStall()
	victim := leaderOf(c.any(), "kill", 0)
	nd := c.nodes[victim-1]
	start := time.Now()
	nd.s.kill()
	nd.s = nil
	c.waitFor("new leader", func() bool {
		l := leaderOf(c.any(), "kill", 0)
		return l != victim && l >= 0
	})
	t.Logf("new leader for partition 0 after %v", time.Since(start).Round(time.Millisecond))
	w.waitProgress(c, 500)
	c.start(int(victim - 1))
	c.waitFor("back in sync", func() bool { return c.fullySynced("kill") })
	w.waitProgress(c, 500)
	w.finish(c, "(a) leader killed")
}

// (c) a follower paused past the lag limit, then resumed.
func TestReplicationFollowerLag(t *testing.T) {
	c := startTestCluster(t, 3, nil)
	c.createTopic("lag", 3, 3)
	w := startWorkload(t, c, "lag")
	w.waitProgress(c, 500)
	w.resetStall()
	// Pause a broker's fetchers: it follows two of the three partitions.
	nd := c.nodes[1]
	start := time.Now()
	nd.s.replicas.setPaused(true)
	c.waitFor("ISR shrink", func() bool {
		t := c.any().store.Snapshot().Topics["lag"]
		for _, pm := range t.Partitions {
			if pm.Leader != nd.id && slices.Contains(pm.ISR, nd.id) {
				return false
			}
		}
		return true
	})
	t.Logf("paused follower %d left the ISRs after %v", nd.id, time.Since(start).Round(time.Millisecond))
	w.waitProgress(c, 500)
	nd.s.replicas.setPaused(false)
	c.waitFor("back in sync", func() bool { return c.fullySynced("lag") })
	t.Logf("follower %d back in the ISRs after %v", nd.id, time.Since(start).Round(time.Millisecond))
	w.waitProgress(c, 500)
	w.finish(c, "(c) follower lag")
}
