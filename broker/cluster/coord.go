package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/drover/drover/broker/coordclient"
)

// Prefix namespaces drover's keys in the coordinator. Under it the layout
// mirrors Kafka's ZooKeeper tree:
//
//	/brokers/ids/<id>                          ephemeral (lease), broker JSON
//	/brokers/topics/<t>                        {"version":3,"topic_id":..,"partitions":{"0":[1,2]}}
//	/brokers/topics/<t>/partitions/<p>/state   {"leader":1,"leader_epoch":0,"isr":[1],"version":1,"controller_epoch":0}
//	/config/topics/<t>                         {"version":1,"config":{...}}
//	/cluster/id                                {"version":"1","id":"..."}
//	/latest_producer_id_block                  {"version":1,"broker":1,"block_start":"0","block_end":"999"}
const Prefix = "/drover"

// DefaultRegistrationTTL is how long a dead broker stays listed (Kafka's
// broker.session.timeout.ms); it bounds how fast a killed leader is replaced.
const DefaultRegistrationTTL = 4 * time.Second

// Key prefixes beyond Kafka's layout.
const (
	// controllerKey is the controller election (candidates under it, the
	// oldest is the controller).
	controllerKey = Prefix + "/controller"
	// shutdownPrefix holds /admin/shutdown/<id> for brokers in controlled
	// shutdown, bound to their registration lease.
	shutdownPrefix = Prefix + "/admin/shutdown/"
)

type kvEntry struct {
	val         []byte
	mod, create int64
}

// Coord is the coordinator-backed store: a watch keeps an in-memory copy of
// the tree, from which snapshots are built.
type Coord struct {
	cli    *coordclient.Client
	self   int32
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	lost   chan struct{}

	// TTL is the registration lease TTL (set before Register).
	TTL time.Duration

	mu      sync.Mutex
	reg     *coordclient.Registration
	regRev  int64
	kv      map[string]kvEntry
	snap    *Snapshot
	changed chan struct{}
	wg      sync.WaitGroup
}

type topicJSON struct {
	Version    int                `json:"version"`
	TopicID    string             `json:"topic_id"`
	Partitions map[string][]int32 `json:"partitions"`
}

type stateJSON struct {
	ControllerEpoch   int64   `json:"controller_epoch"`
	Leader            int32   `json:"leader"`
	Version           int     `json:"version"`
	LeaderEpoch       int32   `json:"leader_epoch"`
	ISR               []int32 `json:"isr"`
	LeaderIncarnation int64   `json:"leader_incarnation,omitempty"`
}

type configJSON struct {
	Version int               `json:"version"`
	Config  map[string]string `json:"config"`
}

func topicKey(t string) string  { return Prefix + "/brokers/topics/" + t }
func configKey(t string) string { return Prefix + "/config/topics/" + t }
func stateKey(t string, p int32) string {
	return topicKey(t) + "/partitions/" + strconv.Itoa(int(p)) + "/state"
}

// OpenCoord connects to the coordinator, makes sure the cluster id exists
// and loads the current tree. Register announces the broker.
func OpenCoord(ctx context.Context, endpoints []string, self int32, log *slog.Logger) (*Coord, error) {
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cli, err := coordclient.Dial(dctx, endpoints)
	if err != nil {
		return nil, err
	}
	c := &Coord{cli: cli, self: self, log: log, lost: make(chan struct{}), changed: make(chan struct{}), kv: map[string]kvEntry{}, TTL: DefaultRegistrationTTL}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.ensureClusterID(dctx); err != nil {
		cli.Close()
		return nil, err
	}
	rev, err := c.load(dctx)
	if err != nil {
		cli.Close()
		return nil, err
	}
	c.wg.Add(1)
	go c.watch(rev + 1)
	return c, nil
}

func (c *Coord) ensureClusterID(ctx context.Context) error {
	key := Prefix + "/cluster/id"
	for {
		v, _, err := c.cli.Get(ctx, key)
		if err != nil {
			return err
		}
		if v != nil {
			return nil
		}
		b, _ := json.Marshal(map[string]string{"version": "1", "id": NewClusterID()})
		if ok, _, err := c.cli.CAS(ctx, key, 0, b); err != nil || ok {
			return err
		}
	}
}

func (c *Coord) load(ctx context.Context) (int64, error) {
	resp, err := c.cli.Etcd().Get(ctx, Prefix+"/", clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", Prefix, err)
	}
	kv := make(map[string]kvEntry, len(resp.Kvs))
	for _, e := range resp.Kvs {
		kv[string(e.Key)] = kvEntry{val: e.Value, mod: e.ModRevision, create: e.CreateRevision}
	}
	c.mu.Lock()
	c.kv = kv
	c.rebuild()
	c.mu.Unlock()
	return resp.Header.Revision, nil
}

func (c *Coord) watch(from int64) {
	defer c.wg.Done()
	for c.ctx.Err() == nil {
		for ev := range c.cli.Watch(c.ctx, Prefix+"/", from) {
			c.mu.Lock()
			old, had := c.kv[ev.Key]
			switch {
			case had && old.mod >= ev.Rev:
				// Our own write, applied locally already (or newer).
			case ev.Deleted:
				delete(c.kv, ev.Key)
				c.rebuild()
			default:
				e := kvEntry{val: ev.Value, mod: ev.Rev, create: ev.Rev}
				if had {
					e.create = old.create
				}
				c.kv[ev.Key] = e
				c.rebuild()
			}
			c.mu.Unlock()
			from = ev.Rev + 1
		}
		if c.ctx.Err() != nil {
			return
		}
		// Compacted past our revision: reload and watch on.
		rev, err := c.load(c.ctx)
		if err != nil {
			time.Sleep(500 * time.Millisecond)
			continue
		}
		from = rev + 1
	}
}

// rebuild derives a snapshot from the key/value copy. Callers hold mu.
func (c *Coord) rebuild() {
	s := &Snapshot{Controller: -1, Topics: map[string]*Topic{}, ShuttingDown: map[int32]bool{}}
	states := map[string]map[int32]stateJSON{}
	stateRevs := map[string]map[int32]int64{}
	configs := map[string]map[string]string{}
	var ctlRev int64
	for k, e := range c.kv {
		v := e.val
		rest := strings.TrimPrefix(k, Prefix)
		switch {
		case strings.HasPrefix(rest, "/controller/"):
			if id, err := strconv.Atoi(string(v)); err == nil && (ctlRev == 0 || e.create < ctlRev) {
				ctlRev = e.create
				s.Controller = int32(id)
			}
		case strings.HasPrefix(rest, "/admin/shutdown/"):
			if id, err := strconv.Atoi(strings.TrimPrefix(rest, "/admin/shutdown/")); err == nil {
				s.ShuttingDown[int32(id)] = true
			}
		case rest == "/cluster/id":
			var m map[string]string
			if json.Unmarshal(v, &m) == nil {
				s.ClusterID = m["id"]
			}
		case strings.HasPrefix(rest, "/brokers/ids/"):
			id, err := strconv.Atoi(strings.TrimPrefix(rest, "/brokers/ids/"))
			var b Broker
			if err == nil && json.Unmarshal(v, &b) == nil {
				b.ID = int32(id)
				b.Incarnation = e.mod
				s.Brokers = append(s.Brokers, b)
			}
		case strings.HasPrefix(rest, "/brokers/topics/"):
			parts := strings.Split(strings.TrimPrefix(rest, "/brokers/topics/"), "/")
			switch {
			case len(parts) == 1:
				var tj topicJSON
				if json.Unmarshal(v, &tj) != nil {
					continue
				}
				id, err := DecodeID(tj.TopicID)
				if err != nil {
					continue
				}
				t := &Topic{Name: parts[0], ID: id, Partitions: make([]Partition, len(tj.Partitions))}
				ok := true
				for ps, reps := range tj.Partitions {
					p, err := strconv.Atoi(ps)
					if err != nil || p < 0 || p >= len(t.Partitions) || len(reps) == 0 {
						ok = false
						break
					}
					t.Partitions[p] = Partition{Index: int32(p), Replicas: reps, Leader: reps[0], ISR: reps}
				}
				if ok {
					s.Topics[t.Name] = t
				}
			case len(parts) == 4 && parts[1] == "partitions" && parts[3] == "state":
				p, err := strconv.Atoi(parts[2])
				var st stateJSON
				if err == nil && json.Unmarshal(v, &st) == nil {
					if states[parts[0]] == nil {
						states[parts[0]] = map[int32]stateJSON{}
						stateRevs[parts[0]] = map[int32]int64{}
					}
					states[parts[0]][int32(p)] = st
					stateRevs[parts[0]][int32(p)] = e.mod
				}
			}
		case strings.HasPrefix(rest, "/config/topics/"):
			var cj configJSON
			if json.Unmarshal(v, &cj) == nil {
				configs[strings.TrimPrefix(rest, "/config/topics/")] = cj.Config
			}
		}
	}
	for name, t := range s.Topics {
		for i := range t.Partitions {
			if st, ok := states[name][int32(i)]; ok {
				pm := &t.Partitions[i]
				pm.Leader, pm.LeaderEpoch, pm.ISR = st.Leader, st.LeaderEpoch, st.ISR
				pm.LeaderIncarnation, pm.Version = st.LeaderIncarnation, stateRevs[name][int32(i)]
			}
		}
		t.Configs = configs[name]
	}
	sortBrokers(s.Brokers)
	for id := range s.ShuttingDown {
		if _, ok := s.Broker(id); !ok {
			delete(s.ShuttingDown, id)
		}
	}
	if _, ok := s.Broker(s.Controller); !ok {
		s.Controller = -1
	}
	c.snap = s
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Coord) Snapshot() *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap
}

func (c *Coord) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// Lost is closed when the broker's registration lease is gone (the
// coordinator thinks this broker is dead).
func (c *Coord) Lost() <-chan struct{} { return c.lost }

func (c *Coord) Register(ctx context.Context, b Broker) error {
	val, _ := json.Marshal(b)
	key := Prefix + "/brokers/ids/" + strconv.Itoa(int(b.ID))
	reg, err := c.cli.Register(c.ctx, key, val, c.TTL)
	if err != nil {
		return err
	}
	resp, err := c.cli.Etcd().Get(ctx, key)
	if err != nil || len(resp.Kvs) == 0 {
		reg.Close(context.Background())
		return fmt.Errorf("read back registration: %v", err)
	}
	kv := resp.Kvs[0]
	c.mu.Lock()
	c.reg = reg
	c.regRev = kv.ModRevision
	if old, ok := c.kv[key]; !ok || old.mod < kv.ModRevision {
		c.kv[key] = kvEntry{val: kv.Value, mod: kv.ModRevision, create: kv.CreateRevision}
	}
	c.rebuild()
	c.mu.Unlock()
	go func() {
		<-reg.Done()
		if c.ctx.Err() == nil {
			close(c.lost)
		}
	}()
	return nil
}

// Incarnation is this broker's registration revision (0 before Register).
func (c *Coord) Incarnation() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.regRev
}

// applyLocal applies writes made at revision rev to the local copy at once,
// so the caller sees its own change before the watch delivers it.
func (c *Coord) applyLocal(rev int64, puts map[string][]byte, dels []string) {
	c.mu.Lock()
	for k, v := range puts {
		e := kvEntry{val: v, mod: rev, create: rev}
		if old, ok := c.kv[k]; ok {
			if old.mod >= rev {
				continue
			}
			e.create = old.create
		}
		c.kv[k] = e
	}
	for _, k := range dels {
		for kk := range c.kv {
			if kk == k || strings.HasPrefix(kk, k+"/") {
				delete(c.kv, kk)
			}
		}
	}
	c.rebuild()
	c.mu.Unlock()
}

func (c *Coord) CreateTopic(ctx context.Context, name string, partitions int32, rf int16, configs map[string]string) (*Topic, error) {
	snap := c.Snapshot()
	if _, ok := snap.Topics[name]; ok {
		return nil, ErrTopicExists
	}
	asg, err := Assign(snap.LiveBrokers(), name, partitions, rf)
	if err != nil {
		return nil, err
	}
	t := &Topic{Name: name, ID: NewTopicID(), Configs: configs}
	tj := topicJSON{Version: 3, TopicID: EncodeID(t.ID), Partitions: map[string][]int32{}}
	puts := map[string][]byte{}
	for p, reps := range asg {
		tj.Partitions[strconv.Itoa(p)] = reps
		lb, _ := snap.Broker(reps[0])
		t.Partitions = append(t.Partitions, Partition{Index: int32(p), Replicas: reps, Leader: reps[0], ISR: reps, LeaderIncarnation: lb.Incarnation})
		sb, _ := json.Marshal(stateJSON{Leader: reps[0], Version: 1, ISR: reps, LeaderIncarnation: lb.Incarnation})
		puts[stateKey(name, int32(p))] = sb
	}
	tb, _ := json.Marshal(tj)
	cb, _ := json.Marshal(configJSON{Version: 1, Config: configs})
	if configs == nil {
		cb, _ = json.Marshal(configJSON{Version: 1, Config: map[string]string{}})
	}
	// States and config first (harmless without the topic key), then the
	// topic key by compare-and-set: it is what makes the topic exist.
	etcd := c.cli.Etcd()
	keys := make([]string, 0, len(puts))
	for k := range puts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i := 0; i < len(keys); i += 100 {
		var ops []clientv3.Op
		for _, k := range keys[i:min(i+100, len(keys))] {
			ops = append(ops, clientv3.OpPut(k, string(puts[k])))
		}
		r, err := etcd.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("write partition state: %w", err)
		}
		for p := range t.Partitions {
			t.Partitions[p].Version = r.Header.Revision // the last chunk's revision is good enough for readers of t
		}
	}
	resp, err := etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(topicKey(name)), "=", 0)).
		Then(clientv3.OpPut(topicKey(name), string(tb)), clientv3.OpPut(configKey(name), string(cb))).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("create topic: %w", err)
	}
	if !resp.Succeeded {
		return nil, ErrTopicExists
	}
	// The states were written in earlier revisions; apply them at theirs
	// (one re-read keeps their versions exact for compare-and-set).
	if r, err := etcd.Get(ctx, topicKey(name)+"/", clientv3.WithPrefix()); err == nil {
		c.mu.Lock()
		for _, e := range r.Kvs {
			if old, ok := c.kv[string(e.Key)]; !ok || old.mod < e.ModRevision {
				c.kv[string(e.Key)] = kvEntry{val: e.Value, mod: e.ModRevision, create: e.CreateRevision}
			}
		}
		c.mu.Unlock()
	}
	c.applyLocal(resp.Header.Revision, map[string][]byte{topicKey(name): tb, configKey(name): cb}, nil)
	return t, nil
}

func (c *Coord) DeleteTopic(ctx context.Context, name string) error {
	resp, err := c.cli.Etcd().Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(topicKey(name)), ">", 0)).
		Then(clientv3.OpDelete(topicKey(name)), clientv3.OpDelete(topicKey(name)+"/", clientv3.WithPrefix()), clientv3.OpDelete(configKey(name))).
		Commit()
	if err != nil {
		return fmt.Errorf("delete topic: %w", err)
	}
	if !resp.Succeeded {
		return ErrUnknownTopic
	}
	c.applyLocal(resp.Header.Revision, nil, []string{topicKey(name), configKey(name)})
	return nil
}

func (c *Coord) AlterTopicConfig(ctx context.Context, name string, configs map[string]string) error {
	if _, ok := c.Snapshot().Topics[name]; !ok {
		return ErrUnknownTopic
	}
	cb, _ := json.Marshal(configJSON{Version: 1, Config: configs})
	r, err := c.cli.Etcd().Put(ctx, configKey(name), string(cb))
	if err != nil {
		return err
	}
	c.applyLocal(r.Header.Revision, map[string][]byte{configKey(name): cb}, nil)
	return nil
}

func (c *Coord) ProducerIDBlock(ctx context.Context) (int64, int64, error) {
	key := Prefix + "/latest_producer_id_block"
	const size = 1000
	for {
		v, rev, err := c.cli.Get(ctx, key)
		if err != nil {
			return 0, 0, err
		}
		start := int64(0)
		if v != nil {
			var m struct {
				End string `json:"block_end"`
			}
			if err := json.Unmarshal(v, &m); err != nil {
				return 0, 0, fmt.Errorf("parse %s: %w", key, err)
			}
			end, _ := strconv.ParseInt(m.End, 10, 64)
			start = end + 1
		}
		nb, _ := json.Marshal(map[string]any{"version": 1, "broker": c.self, "block_start": strconv.FormatInt(start, 10), "block_end": strconv.FormatInt(start+size-1, 10)})
		ok, _, err := c.cli.CAS(ctx, key, rev, nb)
		if err != nil {
			return 0, 0, err
		}
		if ok {
			return start, size, nil
		}
	}
}

// Close deregisters (the broker disappears from Metadata at once) and disconnects.
func (c *Coord) Close() error {
	c.mu.Lock()
	reg := c.reg
	c.mu.Unlock()
	c.cancel()
	var err error
	if reg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err = reg.Close(ctx)
		cancel()
	}
	c.wg.Wait()
	c.cli.Close()
	return err
}

// AlterPartition writes a partition state on behalf of its leader (an ISR
// change), compare-and-set on the state's version.
func (c *Coord) AlterPartition(ctx context.Context, topic string, partition int32, st PartitionState, expect int64) (int64, error) {
	return c.writeState(ctx, nil, topic, partition, st, expect)
}

// writeState puts a partition state if its version is still expect and,
// for the controller, if lead still holds the controller election.
func (c *Coord) writeState(ctx context.Context, lead *coordclient.Leadership, topic string, partition int32, st PartitionState, expect int64) (int64, error) {
	key := stateKey(topic, partition)
	sj := stateJSON{Leader: st.Leader, Version: 1, LeaderEpoch: st.LeaderEpoch, ISR: st.ISR, LeaderIncarnation: st.LeaderIncarnation}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", expect)}
	if lead != nil {
		sj.ControllerEpoch = lead.Rev()
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(lead.Key()), "=", lead.Rev()))
	}
	b, _ := json.Marshal(sj)
	resp, err := c.cli.Etcd().Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return 0, fmt.Errorf("write partition state %s-%d: %w", topic, partition, err)
	}
	if !resp.Succeeded {
		return 0, ErrStaleState
	}
	c.applyLocal(resp.Header.Revision, map[string][]byte{key: b}, nil)
	return resp.Header.Revision, nil
}

// BeginShutdown marks this broker as in controlled shutdown: the controller
// moves its leaderships away and takes it out of ISRs. The mark is bound to
// the registration lease, so it vanishes with the broker.
func (c *Coord) BeginShutdown(ctx context.Context) error {
	c.mu.Lock()
	reg := c.reg
	c.mu.Unlock()
	if reg == nil {
		return errors.New("not registered")
	}
	key := shutdownPrefix + strconv.Itoa(int(c.self))
	resp, err := c.cli.Etcd().Put(ctx, key, "1", clientv3.WithLease(reg.Lease()))
	if err != nil {
		return fmt.Errorf("mark controlled shutdown: %w", err)
	}
	c.applyLocal(resp.Header.Revision, map[string][]byte{key: []byte("1")}, nil)
	return nil
}

// Abandon drops the connection without deregistering, as a killed process
// would: the registration (and a controller candidacy) expire after their
// TTL. Tests use it to simulate kill -9.
func (c *Coord) Abandon() {
	c.cancel()
	c.wg.Wait()
	c.cli.Close()
}
