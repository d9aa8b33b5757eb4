package kafka

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drover/drover/broker/cluster"
	dlog "github.com/drover/drover/broker/log"
)

// topicConfigDefaults lists the per-topic configs drover honours and how
// each broker setting supplies its default.
var topicConfigKeys = []string{
	"cleanup.policy", "compression.type", "max.message.bytes", "message.timestamp.type",
	"min.insync.replicas", "retention.bytes", "retention.ms", "segment.bytes", "segment.ms",
	"unclean.leader.election.enable", "index.interval.bytes",
}

func (s *Server) topicDefaults() map[string]string {
	c := &s.cfg
	return map[string]string{
		"cleanup.policy":                 "delete",
		"compression.type":               "producer",
		"max.message.bytes":              strconv.Itoa(int(c.MessageMaxBytes)),
		"message.timestamp.type":         "CreateTime",
		"min.insync.replicas":            strconv.Itoa(c.MinInsyncReplicas),
		"retention.bytes":                strconv.FormatInt(c.LogRetentionBytes, 10),
		"retention.ms":                   strconv.FormatInt(c.LogRetentionMs, 10),
		"segment.bytes":                  strconv.FormatInt(c.LogSegmentBytes, 10),
		"segment.ms":                     strconv.FormatInt(c.LogSegmentMs, 10),
		"unclean.leader.election.enable": "false",
		"index.interval.bytes":           "4096",
	}
}

// validateTopicConfig checks a CreateTopics/AlterConfigs override.
func validateTopicConfig(k string, v *string) error {
	known := false
	for _, key := range topicConfigKeys {
		known = known || key == k
	}
	if !known {
		return fmt.Errorf("unknown topic config %q", k)
	}
	if v == nil {
		return nil
	}
	switch k {
	case "cleanup.policy":
		if *v != "delete" {
			return fmt.Errorf("cleanup.policy=%s is not supported (delete only)", *v)
		}
	case "compression.type", "message.timestamp.type":
		if k == "message.timestamp.type" && *v != "CreateTime" {
			return fmt.Errorf("message.timestamp.type=%s is not supported (CreateTime only)", *v)
		}
	case "unclean.leader.election.enable":
		if *v != "true" && *v != "false" {
			return fmt.Errorf("%s must be true or false", k)
		}
	default:
		n, err := strconv.ParseInt(*v, 10, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		if (k == "segment.bytes" && n < 14) || (k == "max.message.bytes" && n < 0) || (k == "min.insync.replicas" && n < 1) {
			return fmt.Errorf("%s=%d out of range", k, n)
		}
	}
	return nil
}

// effectiveConfig merges broker defaults and topic overrides.
func (s *Server) effectiveConfig(t *cluster.Topic) map[string]string {
	m := s.topicDefaults()
	if t != nil {
		for k, v := range t.Configs {
			m[k] = v
		}
	}
	return m
}

func logConfig(m map[string]string) dlog.Config {
	n := func(k string) int64 { v, _ := strconv.ParseInt(m[k], 10, 64); return v }
	return dlog.Config{SegmentBytes: n("segment.bytes"), SegmentMs: n("segment.ms"), RetentionMs: n("retention.ms"),
		RetentionBytes: n("retention.bytes"), IndexIntervalBytes: n("index.interval.bytes")}
}

var validTopicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func checkTopicName(name string) error {
	if !validTopicName.MatchString(name) || name == "." || name == ".." {
		return fmt.Errorf("invalid topic name %q", name)
	}
	return nil
}

// topicManager keeps the local replicas in line with the metadata snapshot.
type topicManager struct {
	s      *Server
	verify bool // unclean shutdown: CRC-check active segments on open

	mu    sync.RWMutex
	snap  *cluster.Snapshot
	parts map[string]map[int32]*partition
}

func newTopicManager(s *Server) *topicManager {
	marker := filepath.Join(s.cfg.LogDir, cleanShutdownFile)
	_, err := os.Stat(marker)
	os.Remove(marker)
	return &topicManager{s: s, verify: err != nil, parts: map[string]map[int32]*partition{}, snap: &cluster.Snapshot{Topics: map[string]*cluster.Topic{}}}
}

// snapshot is the metadata view the protocol answers from.
func (tm *topicManager) snapshot() *cluster.Snapshot {
	return tm.s.store.Snapshot()
}

func (tm *topicManager) get(topic string, p int32) *partition {
	tm.mu.RLock()
	defer tm.mu.RUnlock()
	return tm.parts[topic][p]
}

func partitionDir(logDir, topic string, p int32) string {
	return filepath.Join(logDir, topic+"-"+strconv.Itoa(int(p)))
}

// reconcile opens logs for partitions assigned here, updates leadership and
// configs, and deletes logs of topics that no longer exist (or were
// recreated under a new id).
func (tm *topicManager) reconcile() {
	s := tm.s
	snap := s.store.Snapshot()
	tm.mu.Lock()
	defer tm.mu.Unlock()
	tm.snap = snap
	selfInc := s.incarnation()
	now := time.Now()
	for name, t := range snap.Topics {
		cfg := s.effectiveConfig(t)
		lc := logConfig(cfg)
		maxMsg, _ := strconv.Atoi(cfg["max.message.bytes"])
		minISR, _ := strconv.Atoi(cfg["min.insync.replicas"])
		local := tm.parts[name]
		for _, pm := range t.Partitions {
			mine := false
			for _, r := range pm.Replicas {
				mine = mine || r == s.cfg.BrokerID
			}
			p := local[pm.Index]
			if p != nil && p.topicID != t.ID {
				s.replicas.unfollow(p)
				p.log.Delete()
				delete(local, pm.Index)
				p = nil
			}
			if !mine {
				if p != nil {
					s.replicas.unfollow(p)
					p.log.Delete()
					delete(local, pm.Index)
				}
				continue
			}
			if p == nil {
				var err error
				if p, err = tm.open(t, pm.Index, lc); err != nil {
					s.log.Error("open partition", "topic", name, "partition", pm.Index, "err", err)
					continue
				}
				if local == nil {
					local = map[int32]*partition{}
					tm.parts[name] = local
				}
				local[pm.Index] = p
			} else {
				p.log.SetConfig(lc)
			}
			p.mu.Lock()
			p.maxMsgBytes, p.minISR = maxMsg, minISR
			p.mu.Unlock()
			if from := p.applyState(pm, selfInc, now); from >= 0 {
				s.replicas.follow(p, from)
			} else {
				s.replicas.unfollow(p)
			}
		}
	}
	for name, local := range tm.parts {
		if _, ok := snap.Topics[name]; ok {
			continue
		}
		for _, p := range local {
			s.replicas.unfollow(p)
			p.log.Delete()
		}
		delete(tm.parts, name)
		s.groups.topicDeleted(name)
	}
	tm.removeStrays(snap)
}

// removeStrays deletes partition directories on disk that belong to no
// topic in the snapshot (a topic deleted while this broker was down).
func (tm *topicManager) removeStrays(snap *cluster.Snapshot) {
	ents, err := os.ReadDir(tm.s.cfg.LogDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		i := strings.LastIndexByte(e.Name(), '-')
		if i <= 0 {
			continue
		}
		topic, ps := e.Name()[:i], e.Name()[i+1:]
		p, err := strconv.Atoi(ps)
		if err != nil || strings.HasPrefix(topic, "__drover") {
			continue
		}
		if tm.parts[topic][int32(p)] == nil {
			if _, ok := snap.Topics[topic]; !ok {
				tm.s.log.Info("removing log of deleted topic", "dir", e.Name())
				os.RemoveAll(filepath.Join(tm.s.cfg.LogDir, e.Name()))
			}
		}
	}
}

func (tm *topicManager) open(t *cluster.Topic, idx int32, lc dlog.Config) (*partition, error) {
	dir := partitionDir(tm.s.cfg.LogDir, t.Name, idx)
	metaPath := filepath.Join(dir, "partition.metadata")
	wantMeta := "version: 0\ntopic_id: " + cluster.EncodeID(t.ID) + "\n"
	if data, err := os.ReadFile(metaPath); err == nil && string(data) != wantMeta {
		// Same name, different topic id: the old topic was deleted.
		os.RemoveAll(dir)
	}
	p := &partition{topic: t.Name, index: idx, topicID: t.ID, self: tm.s.cfg.BrokerID, leader: -1}
	l, err := dlog.Open(dir, lc, dlog.OpenOptions{Verify: tm.verify, OnBatch: p.rebuildProducer})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(metaPath, []byte(wantMeta), 0o644); err != nil {
		l.Close()
		return nil, fmt.Errorf("write partition.metadata: %w", err)
	}
	p.log = l
	return p, nil
}

// all returns every local replica.
func (tm *topicManager) all() []*partition {
	tm.mu.RLock()
	defer tm.mu.RUnlock()
	var ps []*partition
	for _, local := range tm.parts {
		for _, p := range local {
			ps = append(ps, p)
		}
	}
	return ps
}

func (tm *topicManager) enforceRetention() {
	tm.mu.RLock()
	var ps []*partition
	for _, local := range tm.parts {
		for _, p := range local {
			ps = append(ps, p)
		}
	}
	tm.mu.RUnlock()
	now := time.Now()
	for _, p := range ps {
		if n, err := p.log.EnforceRetention(now, p.hw.Load()); err != nil {
			tm.s.log.Warn("retention", "topic", p.topic, "partition", p.index, "err", err)
		} else if n > 0 {
			tm.s.log.Info("deleted segments", "topic", p.topic, "partition", p.index, "count", n)
		}
	}
}

// counts reports local partitions, led partitions, under-replicated led
// partitions, and offline and under-replicated partitions cluster-wide
// (from the metadata, as Metadata answers them).
func (tm *topicManager) counts() (parts, led, urp, offline, clusterURP int) {
	tm.mu.RLock()
	for _, local := range tm.parts {
		for _, p := range local {
			parts++
			p.mu.Lock()
			if p.leader == p.self {
				led++
				if len(p.isr) < len(p.replicas) {
					urp++
				}
			}
			p.mu.Unlock()
		}
	}
	tm.mu.RUnlock()
	snap := tm.s.store.Snapshot()
	for _, t := range snap.Topics {
		for _, pm := range t.Partitions {
			if _, ok := snap.Broker(pm.Leader); !ok {
				offline++
			}
			if len(pm.ISR) < len(pm.Replicas) {
				clusterURP++
			}
		}
	}
	return
}

func (tm *topicManager) close() {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	for _, local := range tm.parts {
		for _, p := range local {
			p.log.Close()
		}
	}
}

// createTopic creates a topic through the store and waits until the local
// replicas exist, so a produce right after CreateTopics succeeds.
func (s *Server) createTopic(ctx context.Context, name string, partitions int32, rf int16, configs map[string]string) (*cluster.Topic, error) {
	t, err := s.store.CreateTopic(ctx, name, partitions, rf, configs)
	if err != nil {
		return nil, err
	}
	s.topics.reconcile()
	return t, nil
}
