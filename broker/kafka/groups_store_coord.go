package kafka

// Committed offsets in the coordinator (cluster mode).
//
// Why the coordinator and not a replicated internal topic: a group's
// coordinator broker changes whenever the broker set changes (a rolling
// restart moves every group at least once), and the offsets must be
// readable by the new coordinator at once. etcd gives that with a
// linearizable read, no leader election or log replay of an internal
// partition in the way, and it already runs with auto-compaction on. The
// write rate is what consumers commit (typically every few seconds per
// consumer, one small key per partition), well within etcd's budget; keys
// sit outside the watched metadata tree (cluster/offsets.go). Single-node
// mode keeps the local file store (groups_store.go).

import (
	"context"
	"time"

	"github.com/drover/drover/broker/cluster"
)

// offsetBackend is where committed offsets live.
type offsetBackend interface {
	commit(group string, offs map[tp]committed) error
	fetch(group string, k tp) (committed, bool)
	all(group string) map[tp]committed
	hasGroup(group string) bool
	groups() []string
	deleteGroup(group string) error
	deleteTopic(topic string)
	close()
}

type coordOffsets struct {
	c *cluster.Coord
}

const coordOffsetsTimeout = 5 * time.Second

func (o *coordOffsets) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), coordOffsetsTimeout)
}

func (o *coordOffsets) commit(group string, offs map[tp]committed) error {
	ctx, cancel := o.ctx()
	defer cancel()
	now := time.Now().UnixMilli()
	list := make([]cluster.CommittedOffset, 0, len(offs))
	for k, c := range offs {
		list = append(list, cluster.CommittedOffset{Topic: k.topic, Partition: k.partition, Offset: c.offset, Epoch: c.epoch, Metadata: c.metadata, At: now})
	}
	return o.c.CommitOffsets(ctx, group, list)
}

func (o *coordOffsets) fetch(group string, k tp) (committed, bool) {
	ctx, cancel := o.ctx()
	defer cancel()
	c, ok, err := o.c.FetchOffset(ctx, group, k.topic, k.partition)
	if err != nil || !ok {
		return committed{}, false
	}
	return committed{offset: c.Offset, epoch: c.Epoch, metadata: c.Metadata, at: c.At}, true
}

func (o *coordOffsets) all(group string) map[tp]committed {
	ctx, cancel := o.ctx()
	defer cancel()
	list, _ := o.c.FetchOffsets(ctx, group)
	out := make(map[tp]committed, len(list))
	for _, c := range list {
		out[tp{c.Topic, c.Partition}] = committed{offset: c.Offset, epoch: c.Epoch, metadata: c.Metadata, at: c.At}
	}
	return out
}

func (o *coordOffsets) hasGroup(group string) bool {
	ctx, cancel := o.ctx()
	defer cancel()
	ok, _ := o.c.HasOffsets(ctx, group)
	return ok
}

func (o *coordOffsets) groups() []string {
	ctx, cancel := o.ctx()
	defer cancel()
	gs, _ := o.c.OffsetGroups(ctx)
	return gs
}

func (o *coordOffsets) deleteGroup(group string) error {
	ctx, cancel := o.ctx()
	defer cancel()
	return o.c.DeleteGroupOffsets(ctx, group)
}

func (o *coordOffsets) deleteTopic(topic string) {
	ctx, cancel := o.ctx()
	defer cancel()
	o.c.DeleteTopicOffsets(ctx, topic)
}

func (o *coordOffsets) close() {}
