package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

// Local is the single-node store: metadata lives in <dir>/drover-metadata.json
// (topics, cluster id, producer id block), written atomically on change.
// The only broker is this one.
type Local struct {
	path string

	mu      sync.Mutex
	snap    *Snapshot
	changed chan struct{}
	pidNext int64
}

type localFile struct {
	ClusterID string                `json:"cluster_id"`
	PIDNext   int64                 `json:"producer_id_next"`
	Topics    map[string]localTopic `json:"topics"`
}

type localTopic struct {
	ID         string             `json:"id"`
	Partitions map[string][]int32 `json:"partitions"`
	Configs    map[string]string  `json:"configs,omitempty"`
	Epochs     map[string]int32   `json:"leader_epochs,omitempty"`
}

// OpenLocal loads or creates the single-node store in dir.
func OpenLocal(dir string) (*Local, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l := &Local{path: filepath.Join(dir, "drover-metadata.json"), changed: make(chan struct{})}
	snap := &Snapshot{Controller: -1, Topics: map[string]*Topic{}}
	data, err := os.ReadFile(l.path)
	switch {
	case os.IsNotExist(err):
		snap.ClusterID = NewClusterID()
	case err != nil:
		return nil, fmt.Errorf("read metadata: %w", err)
	default:
		var f localFile
		if err := json.Unmarshal(data, &f); err != nil {
			return nil, fmt.Errorf("parse %s: %w", l.path, err)
		}
		snap.ClusterID = f.ClusterID
		l.pidNext = f.PIDNext
		for name, lt := range f.Topics {
			id, err := DecodeID(lt.ID)
			if err != nil {
				return nil, fmt.Errorf("topic %s: %w", name, err)
			}
			t := &Topic{Name: name, ID: id, Configs: lt.Configs, Partitions: make([]Partition, len(lt.Partitions))}
			for ps, reps := range lt.Partitions {
				p, err := strconv.Atoi(ps)
				if err != nil || p < 0 || p >= len(lt.Partitions) {
					return nil, fmt.Errorf("topic %s: bad partition %q", name, ps)
				}
				t.Partitions[p] = Partition{Index: int32(p), Replicas: reps, Leader: reps[0], ISR: reps, LeaderEpoch: lt.Epochs[ps]}
			}
			snap.Topics[name] = t
		}
	}
	l.snap = snap
	return l, l.saveLocked()
}

func (l *Local) saveLocked() error {
	f := localFile{ClusterID: l.snap.ClusterID, PIDNext: l.pidNext, Topics: map[string]localTopic{}}
	for name, t := range l.snap.Topics {
		lt := localTopic{ID: EncodeID(t.ID), Partitions: map[string][]int32{}, Configs: t.Configs, Epochs: map[string]int32{}}
		for _, p := range t.Partitions {
			k := strconv.Itoa(int(p.Index))
			lt.Partitions[k] = p.Replicas
			lt.Epochs[k] = p.LeaderEpoch
		}
		f.Topics[name] = lt
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp := l.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write metadata: %w", err)
	}
	if fh, err := os.Open(tmp); err == nil {
		fh.Sync()
		fh.Close()
	}
	return os.Rename(tmp, l.path)
}

// publish swaps in a new snapshot; callers hold mu.
func (l *Local) publish(s *Snapshot) {
	l.snap = s
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *Local) clone() *Snapshot {
	s := *l.snap
	s.Topics = make(map[string]*Topic, len(l.snap.Topics))
	for k, v := range l.snap.Topics {
		s.Topics[k] = v
	}
	s.Brokers = append([]Broker(nil), l.snap.Brokers...)
	return &s
}

func (l *Local) Snapshot() *Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.snap
}

func (l *Local) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

func (l *Local) Register(_ context.Context, b Broker) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.clone()
	s.Brokers = []Broker{b}
	s.Controller = b.ID
	l.publish(s)
	return nil
}

func (l *Local) CreateTopic(_ context.Context, name string, partitions int32, rf int16, configs map[string]string) (*Topic, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.snap.Topics[name]; ok {
		return nil, ErrTopicExists
	}
	var ids []int32
	for _, b := range l.snap.Brokers {
		ids = append(ids, b.ID)
	}
	asg, err := Assign(ids, name, partitions, rf)
	if err != nil {
		return nil, err
	}
	t := &Topic{Name: name, ID: NewTopicID(), Configs: configs}
	for p, reps := range asg {
		t.Partitions = append(t.Partitions, Partition{Index: int32(p), Replicas: reps, Leader: reps[0], ISR: reps})
	}
	s := l.clone()
	s.Topics[name] = t
	old := l.snap
	l.snap = s
	if err := l.saveLocked(); err != nil {
		l.snap = old
		return nil, err
	}
	l.snap = old
	l.publish(s)
	return t, nil
}

func (l *Local) DeleteTopic(_ context.Context, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.snap.Topics[name]; !ok {
		return ErrUnknownTopic
	}
	s := l.clone()
	delete(s.Topics, name)
	old := l.snap
	l.snap = s
	if err := l.saveLocked(); err != nil {
		l.snap = old
		return err
	}
	l.snap = old
	l.publish(s)
	return nil
}

func (l *Local) AlterTopicConfig(_ context.Context, name string, configs map[string]string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.snap.Topics[name]
	if !ok {
		return ErrUnknownTopic
	}
	nt := *t
	nt.Configs = configs
	s := l.clone()
	s.Topics[name] = &nt
	old := l.snap
	l.snap = s
	if err := l.saveLocked(); err != nil {
		l.snap = old
		return err
	}
	l.snap = old
	l.publish(s)
	return nil
}

const pidBlock = 1000

func (l *Local) ProducerIDBlock(context.Context) (int64, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	start := l.pidNext
	l.pidNext += pidBlock
	if err := l.saveLocked(); err != nil {
		l.pidNext = start
		return 0, 0, err
	}
	return start, pidBlock, nil
}

func (l *Local) Close() error { return nil }

// ParseConnect splits a coordinator.connect / zookeeper.connect value
// ("h1:2181,h2:2181/chroot") into endpoints and the ignored chroot.
func ParseConnect(s string) (endpoints []string, chroot string) {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "/"); i >= 0 {
		s, chroot = s[:i], s[i:]
	}
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			endpoints = append(endpoints, e)
		}
	}
	return endpoints, chroot
}

// AlterPartition updates the in-memory ISR. In single-node mode every
// partition has one replica, so the leader never really changes it.
func (l *Local) AlterPartition(_ context.Context, topic string, partition int32, st PartitionState, expect int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.snap.Topics[topic]
	if t == nil || partition < 0 || int(partition) >= len(t.Partitions) {
		return 0, ErrUnknownTopic
	}
	if t.Partitions[partition].Version != expect {
		return 0, ErrStaleState
	}
	nt := *t
	nt.Partitions = append([]Partition(nil), t.Partitions...)
	pm := &nt.Partitions[partition]
	pm.ISR = append([]int32(nil), st.ISR...)
	pm.Version++
	s := l.clone()
	s.Topics[topic] = &nt
	l.publish(s)
	return pm.Version, nil
}
