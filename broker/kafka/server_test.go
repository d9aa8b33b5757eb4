package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func testLogger() *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("DROVER_TEST_BROKER_LOG") != "" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
}

func startServer(t testing.TB, dir string, mod ...func(*Config)) *Server {
	t.Helper()
	zero := time.Duration(0)
	cfg := Config{Listen: "127.0.0.1:0", LogDir: dir, GroupInitialRebalanceDelay: &zero, Logger: testLogger(), NumPartitions: 3}
	for _, m := range mod {
		m(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

func client(t testing.TB, s *Server, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.Addr()), kgo.AllowAutoTopicCreation()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestProduceConsume(t *testing.T) {
	s := startServer(t, t.TempDir())
	cl := client(t, s, kgo.DefaultProduceTopic("t1"), kgo.ConsumeTopics("t1"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const n = 1000
	for i := 0; i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}, func(r *kgo.Record, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for seen < n {
		fs := cl.PollFetches(ctx)
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatal(errs)
		}
		seen += fs.NumRecords()
	}
	if seen != n {
		t.Fatalf("saw %d", seen)
	}
}

func TestGroupConsume(t *testing.T) {
	s := startServer(t, t.TempDir())
	p := client(t, s, kgo.DefaultProduceTopic("g1"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 100; i++ {
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	c1 := client(t, s, kgo.ConsumerGroup("grp"), kgo.ConsumeTopics("g1"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := 0
	for seen < 100 {
		fs := c1.PollFetches(ctx)
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatal(errs)
		}
		seen += fs.NumRecords()
	}
	if err := c1.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = "grp"
	resp, err := req.RequestWith(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, tt := range resp.Topics {
		for _, pp := range tt.Partitions {
			total += pp.Offset
		}
	}
	if total != 100 {
		t.Fatalf("committed %d", total)
	}
}
