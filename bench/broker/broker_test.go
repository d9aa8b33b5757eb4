package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
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

// TestMain doubles as a stand-in drover-broker binary (kfake on the configured port), so the
// subprocess path (server.properties, port wait, ApiVersions check, stop) is exercised today.
func TestMain(m *testing.M) {
	if os.Getenv("BENCH_FAKE_BROKER") == "1" {
		fakeBroker()
		return
	}
	os.Exit(m.Run())
}

func fakeBroker() {
	var cfg string
	for i, a := range os.Args {
		if a == "--config" && i+1 < len(os.Args) {
			cfg = os.Args[i+1]
		}
	}
	b, err := os.ReadFile(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	props := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			props[k] = v
		}
	}
	_, portStr, _ := net.SplitHostPort(strings.TrimPrefix(props["listeners"], "PLAINTEXT://"))
	port, _ := strconv.Atoi(portStr)
	parts, _ := strconv.Atoi(props["num.partitions"])
	c, err := kfake.NewCluster(kfake.Ports(port), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(parts))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	c.Close()
}

func TestDroverSubprocessTarget(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("BENCH_FAKE_BROKER", "1")
	tg := droverTarget(self, "--config {config}", 20*time.Second)
	st := newStore()
	cfg := config{runs: 1, records: 2000, size: 1024, partitions: []int{1}, latRate: 1000, latDur: 200 * time.Millisecond, timeout: time.Minute}
	run(context.Background(), cfg, []*target{tg}, st)
	if tg.unavailable != nil {
		t.Fatal(tg.unavailable)
	}
	if len(st.errs) > 0 {
		t.Fatalf("errors: %v", st.errs)
	}
	if len(st.thr[key{"drover-broker", "consume p=1"}]) != 1 || len(st.lat[key{"drover-broker", "latency acks=all"}]) != 1 {
		t.Fatalf("missing figures: %v %v", st.thr, st.lat)
	}
}

func TestDroverUnavailable(t *testing.T) {
	tg := droverTarget("/bin/false", "", 5*time.Second)
	run(context.Background(), config{runs: 1, records: 10, size: 10, partitions: []int{1}, latRate: 10, timeout: time.Second}, []*target{tg}, newStore())
	if tg.unavailable == nil || !strings.Contains(tg.unavailable.Error(), "exited before listening") {
		t.Fatalf("got %v", tg.unavailable)
	}
}
