package kafka

// Committed offsets: <log.dir>/__drover_offsets/offsets.jsonl, an
// append-only log of JSON lines (one per committed partition, plus
// tombstones for deleted groups and topics), replayed on start and
// compacted by rewriting it (temp file + rename) when dead lines outnumber
// live ones. Like Kafka's __consumer_offsets it is written without fsync
// per commit: a process crash loses nothing (the page cache holds it), a
// machine crash can lose the last moments, and a torn last line is
// ignored on replay.
//
// This file store is single-node mode's. In a cluster, offsets live in the
// coordinator (groups_store_coord.go), so they survive a group moving to
// another coordinator broker.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

type tp struct {
	topic     string
	partition int32
}

type committed struct {
	offset   int64
	epoch    int32
	metadata *string
	at       int64
}

type offsetLine struct {
	Group     string  `json:"g"`
	Topic     string  `json:"t,omitempty"`
	Partition int32   `json:"p,omitempty"`
	Offset    int64   `json:"o,omitempty"`
	Epoch     int32   `json:"e,omitempty"`
	Metadata  *string `json:"m,omitempty"`
	At        int64   `json:"ts,omitempty"`
	Delete    bool    `json:"del,omitempty"`
}

type offsetStore struct {
	path string

	mu    sync.Mutex
	f     *os.File
	w     *bufio.Writer
	data  map[string]map[tp]committed
	lines int
	live  int
}

func openOffsetStore(logDir string) (*offsetStore, error) {
	dir := filepath.Join(logDir, "__drover_offsets")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create offsets dir: %w", err)
	}
	st := &offsetStore{path: filepath.Join(dir, "offsets.jsonl"), data: map[string]map[tp]committed{}}
	raw, err := os.ReadFile(st.path)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read offsets: %w", err)
	}
	good := 0
	for len(raw[good:]) > 0 {
		i := bytes.IndexByte(raw[good:], '\n')
		if i < 0 {
			break // torn last line
		}
		var l offsetLine
		if json.Unmarshal(raw[good:good+i], &l) != nil {
			break
		}
		st.apply(l)
		st.lines++
		good += i + 1
	}
	st.f, err = os.OpenFile(st.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open offsets: %w", err)
	}
	if err := st.f.Truncate(int64(good)); err != nil {
		return nil, err
	}
	st.f.Seek(int64(good), 0)
	st.w = bufio.NewWriter(st.f)
	return st, nil
}

func (st *offsetStore) apply(l offsetLine) {
	switch {
	case l.Delete && l.Topic == "":
		st.live -= len(st.data[l.Group])
		delete(st.data, l.Group)
	case l.Delete:
		if g := st.data[l.Group]; g != nil {
			if _, ok := g[tp{l.Topic, l.Partition}]; ok {
				st.live--
				delete(g, tp{l.Topic, l.Partition})
			}
		}
	default:
		g := st.data[l.Group]
		if g == nil {
			g = map[tp]committed{}
			st.data[l.Group] = g
		}
		if _, ok := g[tp{l.Topic, l.Partition}]; !ok {
			st.live++
		}
		g[tp{l.Topic, l.Partition}] = committed{l.Offset, l.Epoch, l.Metadata, l.At}
	}
}

func (st *offsetStore) write(ls []offsetLine) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, l := range ls {
		st.apply(l)
		b, _ := json.Marshal(l)
		st.w.Write(b)
		st.w.WriteByte('\n')
		st.lines++
	}
	if err := st.w.Flush(); err != nil {
		return fmt.Errorf("write offsets: %w", err)
	}
	if st.lines > 10000 && st.lines > 4*st.live {
		st.compact()
	}
	return nil
}

func (st *offsetStore) compact() {
	tmp := st.path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return
	}
	w := bufio.NewWriter(f)
	n := 0
	for g, m := range st.data {
		for k, c := range m {
			b, _ := json.Marshal(offsetLine{Group: g, Topic: k.topic, Partition: k.partition, Offset: c.offset, Epoch: c.epoch, Metadata: c.metadata, At: c.at})
			w.Write(b)
			w.WriteByte('\n')
			n++
		}
	}
	if w.Flush() != nil || f.Sync() != nil || os.Rename(tmp, st.path) != nil {
		f.Close()
		os.Remove(tmp)
		return
	}
	st.f.Close()
	st.f = f
	st.w = bufio.NewWriter(f)
	st.lines = n
}

func (st *offsetStore) commit(group string, offs map[tp]committed) error {
	ls := make([]offsetLine, 0, len(offs))
	now := time.Now().UnixMilli()
	for k, c := range offs {
		ls = append(ls, offsetLine{Group: group, Topic: k.topic, Partition: k.partition, Offset: c.offset, Epoch: c.epoch, Metadata: c.metadata, At: now})
	}
	return st.write(ls)
}

func (st *offsetStore) fetch(group string, k tp) (committed, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	c, ok := st.data[group][k]
	return c, ok
}

func (st *offsetStore) all(group string) map[tp]committed {
	st.mu.Lock()
	defer st.mu.Unlock()
	out := make(map[tp]committed, len(st.data[group]))
	for k, v := range st.data[group] {
		out[k] = v
	}
	return out
}

func (st *offsetStore) hasGroup(group string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.data[group]) > 0
}

func (st *offsetStore) groups() []string {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []string
	for g, m := range st.data {
		if len(m) > 0 {
			out = append(out, g)
		}
	}
	return out
}

func (st *offsetStore) deleteGroup(group string) error {
	return st.write([]offsetLine{{Group: group, Delete: true}})
}

func (st *offsetStore) deleteTopic(topic string) {
	st.mu.Lock()
	var ls []offsetLine
	for g, m := range st.data {
		for k := range m {
			if k.topic == topic {
				ls = append(ls, offsetLine{Group: g, Topic: k.topic, Partition: k.partition, Delete: true})
			}
		}
	}
	st.mu.Unlock()
	if len(ls) > 0 {
		st.write(ls)
	}
}

func (st *offsetStore) close() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.w.Flush()
	st.f.Sync()
	st.f.Close()
}
