package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/drover/drover/broker/cluster"
	"github.com/drover/drover/broker/coordclient/coordtest"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCoordinatorCluster(t *testing.T) {
	eps := coordtest.Start(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var brokers []*Server
	for id := int32(1); id <= 2; id++ {
		st, err := cluster.OpenCoord(ctx, eps, id, testLogger())
		if err != nil {
			t.Fatal(err)
		}
		brokers = append(brokers, startServer(t, t.TempDir(), func(c *Config) { c.BrokerID = id; c.Store = st }))
	}
	waitFor(t, "both brokers registered", func() bool {
		return len(brokers[0].store.Snapshot().Brokers) == 2 && len(brokers[1].store.Snapshot().Brokers) == 2
	})
	cl := client(t, brokers[0], kgo.DefaultProduceTopic("ct"), kgo.ConsumeTopics("ct"), kgo.ConsumerGroup("cg"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil || len(meta.Brokers) != 2 {
		t.Fatalf("metadata brokers: %v %d", err, len(meta.Brokers))
	}
	const n = 300
	for i := 0; i < n; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte("v")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	leaders := map[int32]bool{}
	for _, b := range brokers {
		for _, p := range b.topics.parts["ct"] {
			leaders[p.self] = true
		}
	}
	if len(leaders) != 2 {
		t.Fatalf("partitions not spread over both brokers: %v", leaders)
	}
	seen := 0
	for seen < n {
		fs := cl.PollFetches(ctx)
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatal(errs)
		}
		seen += fs.NumRecords()
	}
	// Both brokers name the same group coordinator.
	for _, b := range brokers {
		want, _ := brokers[0].store.Snapshot().GroupCoordinator("cg")
		got, _ := b.store.Snapshot().GroupCoordinator("cg")
		if want.ID != got.ID {
			t.Fatalf("coordinator disagreement %d vs %d", want.ID, got.ID)
		}
	}
	// A graceful stop deregisters at once.
	brokers[1].Stop()
	waitFor(t, "broker 2 deregistered", func() bool { return len(brokers[0].store.Snapshot().Brokers) == 1 })
	// Topic deletion reaches the other broker's disk.
	del := kmsg.NewPtrDeleteTopicsRequest()
	del.TopicNames = []string{"ct"}
	name := "ct"
	del.Topics = []kmsg.DeleteTopicsRequestTopic{{Topic: &name}} // v6+
	if _, err := del.RequestWith(ctx, cl); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "topic gone", func() bool { _, ok := brokers[0].store.Snapshot().Topics["ct"]; return !ok })
}
