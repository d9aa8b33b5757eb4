package cluster

// Committed consumer group offsets in the coordinator, so they survive a
// broker restart and a group-coordinator move (a rolling restart moves
// groups between brokers). Keys live outside the watched /drover/ tree so
// commits do not wake every broker's metadata watch:
//
//	/drover-offsets/<group>/<topic>/<partition>   {"o":..,"e":..,"m":..,"ts":..}
//
// (group and topic path-escaped). The coordinator runs etcd with
// auto-compaction on, so the stream of overwrites does not grow the store.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// OffsetsPrefix is where committed offsets live.
const OffsetsPrefix = "/drover-offsets/"

// CommittedOffset is one partition's committed offset.
type CommittedOffset struct {
	Topic     string  `json:"-"`
	Partition int32   `json:"-"`
	Offset    int64   `json:"o"`
	Epoch     int32   `json:"e"`
	Metadata  *string `json:"m,omitempty"`
	At        int64   `json:"ts,omitempty"`
}

func groupPrefix(group string) string { return OffsetsPrefix + url.PathEscape(group) + "/" }

func offsetKey(group, topic string, p int32) string {
	return groupPrefix(group) + url.PathEscape(topic) + "/" + strconv.Itoa(int(p))
}

func parseOffsetKey(k string) (group, topic string, p int32, ok bool) {
	parts := strings.Split(strings.TrimPrefix(k, OffsetsPrefix), "/")
	if len(parts) != 3 {
		return "", "", 0, false
	}
	g, err1 := url.PathUnescape(parts[0])
	t, err2 := url.PathUnescape(parts[1])
	n, err3 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return "", "", 0, false
	}
	return g, t, int32(n), true
}

// CommitOffsets stores a group's offsets (in transactions of up to 100 keys).
func (c *Coord) CommitOffsets(ctx context.Context, group string, offs []CommittedOffset) error {
	for i := 0; i < len(offs); i += 100 {
		var ops []clientv3.Op
		for _, o := range offs[i:min(i+100, len(offs))] {
			b, _ := json.Marshal(o)
			ops = append(ops, clientv3.OpPut(offsetKey(group, o.Topic, o.Partition), string(b)))
		}
		if _, err := c.cli.Etcd().Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("commit offsets: %w", err)
		}
	}
	return nil
}

// FetchOffsets returns a group's committed offsets.
func (c *Coord) FetchOffsets(ctx context.Context, group string) ([]CommittedOffset, error) {
	resp, err := c.cli.Etcd().Get(ctx, groupPrefix(group), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("fetch offsets: %w", err)
	}
	out := make([]CommittedOffset, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		_, t, p, ok := parseOffsetKey(string(kv.Key))
		var o CommittedOffset
		if !ok || json.Unmarshal(kv.Value, &o) != nil {
			continue
		}
		o.Topic, o.Partition = t, p
		out = append(out, o)
	}
	return out, nil
}

// FetchOffset returns one partition's committed offset.
func (c *Coord) FetchOffset(ctx context.Context, group, topic string, p int32) (CommittedOffset, bool, error) {
	v, _, err := c.cli.Get(ctx, offsetKey(group, topic, p))
	if err != nil || v == nil {
		return CommittedOffset{}, false, err
	}
	var o CommittedOffset
	if err := json.Unmarshal(v, &o); err != nil {
		return CommittedOffset{}, false, nil
	}
	o.Topic, o.Partition = topic, p
	return o, true, nil
}

// HasOffsets reports whether a group has any committed offset.
func (c *Coord) HasOffsets(ctx context.Context, group string) (bool, error) {
	resp, err := c.cli.Etcd().Get(ctx, groupPrefix(group), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return false, err
	}
	return resp.Count > 0, nil
}

// OffsetGroups lists the groups that have committed offsets.
func (c *Coord) OffsetGroups(ctx context.Context) ([]string, error) {
	resp, err := c.cli.Etcd().Get(ctx, OffsetsPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, kv := range resp.Kvs {
		if g, _, _, ok := parseOffsetKey(string(kv.Key)); ok && !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	return out, nil
}

// DeleteGroupOffsets removes a group's offsets.
func (c *Coord) DeleteGroupOffsets(ctx context.Context, group string) error {
	_, err := c.cli.Etcd().Delete(ctx, groupPrefix(group), clientv3.WithPrefix())
	return err
}

// DeleteTopicOffsets removes every group's offsets of a deleted topic.
func (c *Coord) DeleteTopicOffsets(ctx context.Context, topic string) error {
	resp, err := c.cli.Etcd().Get(ctx, OffsetsPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return err
	}
	for _, kv := range resp.Kvs {
		if _, t, _, ok := parseOffsetKey(string(kv.Key)); ok && t == topic {
			if _, err := c.cli.Etcd().Delete(ctx, string(kv.Key)); err != nil {
				return err
			}
		}
	}
	return nil
}
