package main

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func TestNullSinkAcksBothModes(t *testing.T) {
	s, err := startNullSink(8)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, all := range []bool{false, true} {
		tp, err := produceThroughput(ctx, []string{s.Addr()}, "t", 2000, payload(1024), all)
		if err != nil {
			t.Fatalf("acks all=%v: %v", all, err)
		}
		if tp.records != 2000 {
			t.Fatalf("records %d", tp.records)
		}
	}
	if _, err := produceLatency(ctx, []string{s.Addr()}, "l", payload(100), true, 1000, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
}

// The cluster mode, exercised against a 3-broker kfake until a drover cluster can be started here.
func TestClusterModeOnKfake(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := newStore()
	cfg := config{runs: 1, records: 3000, size: 1024, partitions: []int{2}, latRate: 1000, latDur: 200 * time.Millisecond, timeout: time.Minute}
	tg := clusterTarget(c.ListenAddrs())
	run(context.Background(), cfg, []*target{tg}, st)
	if tg.unavailable != nil {
		t.Fatal(tg.unavailable)
	}
	if len(st.errs) > 0 {
		t.Fatalf("errors: %v", st.errs)
	}
	for _, scn := range []string{"produce acks=all RF=3 p=2", "consume RF=3 p=2"} {
		if len(st.thr[key{"drover-3brokers", scn}]) != 1 {
			t.Fatalf("no %q figure: %v", scn, st.thr)
		}
	}
	if out := report(cfg, []*target{tg}, st); len(out) == 0 {
		t.Fatal("empty report")
	}
}
