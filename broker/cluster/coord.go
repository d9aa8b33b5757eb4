package cluster

import (
	"context"
	"encoding/json"
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

// RegistrationTTL is how long a dead broker stays listed.
const RegistrationTTL = 6 * time.Second

// Coord is the coordinator-backed store: a watch keeps an in-memory copy of
// the tree, from which snapshots are built.
type Coord struct {
	cli    *coordclient.Client
	self   int32
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	lost   chan struct{}

	mu      sync.Mutex
	reg     *coordclient.Registration
	kv      map[string][]byte
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
	ControllerEpoch int32   `json:"controller_epoch"`
	Leader          int32   `json:"leader"`
	Version         int     `json:"version"`
	LeaderEpoch     int32   `json:"leader_epoch"`
	ISR             []int32 `json:"isr"`
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
	c := &Coord{cli: cli, self: self, log: log, lost: make(chan struct{}), changed: make(chan struct{}), kv: map[string][]byte{}}
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
	kv, rev, err := c.cli.List(ctx, Prefix+"/")
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.kv = kv
	c.rebuild()
	c.mu.Unlock()
	return rev, nil
}

func (c *Coord) watch(from int64) {
	defer c.wg.Done()
	for c.ctx.Err() == nil {
		for ev := range c.cli.Watch(c.ctx, Prefix+"/", from) {
			c.mu.Lock()
			if ev.Deleted {
				delete(c.kv, ev.Key)
			} else {
				c.kv[ev.Key] = ev.Value
			}
			c.rebuild()
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
	s := &Snapshot{Controller: -1, Topics: map[string]*Topic{}}
	states := map[string]map[int32]stateJSON{}
	configs := map[string]map[string]string{}
	for k, v := range c.kv {
		rest := strings.TrimPrefix(k, Prefix)
		switch {
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
					}
					states[parts[0]][int32(p)] = st
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
				t.Partitions[i].Leader, t.Partitions[i].LeaderEpoch, t.Partitions[i].ISR = st.Leader, st.LeaderEpoch, st.ISR
			}
		}
		t.Configs = configs[name]
	}
	sortBrokers(s.Brokers)
	if len(s.Brokers) > 0 {
		s.Controller = s.Brokers[0].ID
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
	reg, err := c.cli.Register(c.ctx, key, val, RegistrationTTL)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.reg = reg
	c.kv[key] = val
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

// put applies writes to the local copy at once, so the caller sees its own
// change before the watch delivers it.
func (c *Coord) applyLocal(puts map[string][]byte, dels []string) {
	c.mu.Lock()
	for k, v := range puts {
		c.kv[k] = v
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
	var ids []int32
	for _, b := range snap.Brokers {
		ids = append(ids, b.ID)
	}
	asg, err := Assign(ids, name, partitions, rf)
	if err != nil {
		return nil, err
	}
	t := &Topic{Name: name, ID: NewTopicID(), Configs: configs}
	tj := topicJSON{Version: 3, TopicID: EncodeID(t.ID), Partitions: map[string][]int32{}}
	puts := map[string][]byte{}
	for p, reps := range asg {
		tj.Partitions[strconv.Itoa(p)] = reps
		t.Partitions = append(t.Partitions, Partition{Index: int32(p), Replicas: reps, Leader: reps[0], ISR: reps})
		sb, _ := json.Marshal(stateJSON{Leader: reps[0], Version: 1, ISR: reps})
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
		if _, err := etcd.Txn(ctx).Then(ops...).Commit(); err != nil {
			return nil, fmt.Errorf("write partition state: %w", err)
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
	puts[topicKey(name)] = tb
	puts[configKey(name)] = cb
	c.applyLocal(puts, nil)
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
	c.applyLocal(nil, []string{topicKey(name), configKey(name)})
	return nil
}

func (c *Coord) AlterTopicConfig(ctx context.Context, name string, configs map[string]string) error {
	if _, ok := c.Snapshot().Topics[name]; !ok {
		return ErrUnknownTopic
	}
	cb, _ := json.Marshal(configJSON{Version: 1, Config: configs})
	if _, err := c.cli.Etcd().Put(ctx, configKey(name), string(cb)); err != nil {
		return err
	}
	c.applyLocal(map[string][]byte{configKey(name): cb}, nil)
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
