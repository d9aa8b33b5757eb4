package kafka

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"strconv"
	"strings"
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
	// A bounce: the leader of partition 1 killed and restarted at once,
	// before its registration expires. The controller must not let the new
	// incarnation keep the old leadership (its log may lack what it acked).
	victim = leaderOf(c.any(), "kill", 1)
	nd = c.nodes[victim-1]
	start = time.Now()
	nd.s.kill()
	nd.s = nil
	c.start(int(victim - 1))
	c.waitFor("leadership re-elected", func() bool {
		t := c.any().store.Snapshot().Topics["kill"]
		b, _ := c.any().store.Snapshot().Broker(victim)
		pm := t.Partitions[1]
		return pm.Leader >= 0 && (pm.Leader != victim || pm.LeaderIncarnation == b.Incarnation)
	})
	t.Logf("bounced leader of partition 1 replaced after %v", time.Since(start).Round(time.Millisecond))
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

func committedTotal(t *testing.T, c *tcluster, group string) int64 {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		resp, err := req.RequestWith(ctx, cl)
		if err == nil && resp.ErrorCode == 0 {
			var sum int64
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					if rp.ErrorCode == 0 && rp.Offset > 0 {
						sum += rp.Offset
					}
				}
			}
			return sum
		}
		if ctx.Err() != nil {
			t.Fatalf("offset fetch: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Committed offsets survive the group's coordinator broker stopping (the
// group moves to another broker) and coming back (it moves again), and the
// health view (Metadata ISR, /metrics) shows the under-replication meanwhile.
func TestGroupOffsetsSurviveCoordinatorMove(t *testing.T) {
	c := startTestCluster(t, 3, nil)
	c.createTopic("g", 3, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.DefaultProduceTopic("g"), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range 90 {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...), kgo.ConsumerGroup("gm"), kgo.ConsumeTopics("g"),
		kgo.DisableAutoCommit(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for n < 90 {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("consume timed out")
		}
		n += fs.NumRecords()
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	cons.Close()
	if got := committedTotal(t, c, "gm"); got != 90 {
		t.Fatalf("committed %d, want 90", got)
	}
	co, _ := c.any().store.Snapshot().GroupCoordinator("gm")
	nd := c.nodes[co.ID-1]
	if err := nd.s.Stop(); err != nil {
		t.Log(err)
	}
	nd.s = nil
	if co2, _ := c.any().store.Snapshot().GroupCoordinator("gm"); co2.ID == co.ID {
		t.Fatalf("group coordinator did not move")
	}
	if got := committedTotal(t, c, "gm"); got != 90 {
		t.Fatalf("after the coordinator moved: committed %d, want 90", got)
	}
	// Health view while a broker is down.
	c.waitFor("under-replicated in metadata and metrics", func() bool {
		s := c.any()
		var b strings.Builder
		s.WriteMetrics(&b)
		t := s.store.Snapshot().Topics["g"]
		for _, pm := range t.Partitions {
			if len(pm.ISR) == len(pm.Replicas) {
				return false
			}
		}
		return strings.Contains(b.String(), "drover_cluster_under_replicated_partitions 3\n") &&
			strings.Contains(b.String(), "drover_broker_offline_partitions 0\n")
	})
	c.start(int(co.ID - 1))
	c.waitFor("back in sync", func() bool { return c.fullySynced("g") })
	if got := committedTotal(t, c, "gm"); got != 90 {
		t.Fatalf("after the coordinator came back: committed %d, want 90", got)
	}
	// Metadata as the provisioner reads it: full ISRs, a live controller.
	cl, _ := kgo.NewClient(kgo.SeedBrokers(c.seeds()...))
	defer cl.Close()
	meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if meta.ControllerID < 1 || meta.ControllerID > 3 {
		t.Fatalf("controller id %d", meta.ControllerID)
	}
	for _, mt := range meta.Topics {
		if mt.Topic != nil && *mt.Topic == "g" {
			for _, mp := range mt.Partitions {
				if mp.Leader < 1 || len(mp.ISR) != 3 || len(mp.Replicas) != 3 {
					t.Fatalf("metadata partition %+v", mp)
				}
			}
		}
	}
}

// CreateTopics refuses a replication factor above the live broker count;
// acks=all answers NOT_ENOUGH_REPLICAS when the ISR is below min.insync.replicas.
func TestReplicationFactorAndMinISR(t *testing.T) {
	c := startTestCluster(t, 3, nil)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.seeds()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "rf4", 1, 4
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Topics[0].ErrorCode != kerr.InvalidReplicationFactor.Code {
		t.Fatalf("RF 4 on 3 brokers: error %d", resp.Topics[0].ErrorCode)
	}
	c.createTopic("mi", 1, 3)
	// Take two followers away: the ISR drops to 1 < min.insync.replicas=2.
	leader := leaderOf(c.any(), "mi", 0)
	for _, nd := range c.nodes {
		if nd.id != leader {
			nd.s.Stop()
			nd.s = nil
		}
	}
	ld := c.nodes[leader-1].s
	c.waitFor("ISR of one", func() bool { return len(ld.store.Snapshot().Topics["mi"].Partitions[0].ISR) == 1 })
	pr := kmsg.NewPtrProduceRequest()
	pr.Acks, pr.TimeoutMillis = -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "mi"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = testBatch(t)
	pt.Partitions = append(pt.Partitions, pp)
	pr.Topics = append(pr.Topics, pt)
	one, err := kgo.NewClient(kgo.SeedBrokers(ld.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	presp, err := pr.RequestWith(ctx, one)
	if err != nil {
		t.Fatal(err)
	}
	if code := presp.Topics[0].Partitions[0].ErrorCode; code != kerr.NotEnoughReplicas.Code {
		t.Fatalf("acks=all with ISR 1 < 2: error %d, want NOT_ENOUGH_REPLICAS", code)
	}
	// (kgo rewrites a raw produce request's acks to its own setting.)
	leaderAcks, err := kgo.NewClient(kgo.SeedBrokers(ld.Addr()), kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer leaderAcks.Close()
	pr.Acks = 1
	presp, err = pr.RequestWith(ctx, leaderAcks)
	if err != nil {
		t.Fatal(err)
	}
	if code := presp.Topics[0].Partitions[0].ErrorCode; code != 0 {
		t.Fatalf("acks=1 with ISR 1: error %d", code)
	}
}

// testBatch is one uncompressed record batch (no producer id).
func testBatch(t *testing.T) []byte {
	var body []byte
	body = append(body, 0)              // attributes
	body = binary.AppendVarint(body, 0) // ts delta
	body = binary.AppendVarint(body, 0) // offset delta
	body = binary.AppendVarint(body, -1)
	body = binary.AppendVarint(body, 1)
	body = append(body, 'x')
	body = binary.AppendVarint(body, 0) // headers
	rb := kmsg.RecordBatch{Magic: 2, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 1,
		FirstTimestamp: time.Now().UnixMilli(), MaxTimestamp: time.Now().UnixMilli(),
		Records: append(binary.AppendVarint(nil, int64(len(body))), body...)}
	raw := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}
