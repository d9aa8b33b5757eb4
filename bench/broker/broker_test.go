package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
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
		tp, err := produceThroughput(ctx, []string{s.Addr()}, "t", 2000, payload(1024), all, newSampler(nil, os.TempDir()))
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

// fakeBroker stands in for drover-broker and drover-coordinator. Standalone (no
// coordinator.connect): a one-broker kfake on the listener port. In a cluster, broker 1 serves
// all three brokers' ports with one 3-broker kfake (it reads its siblings' server.properties,
// which are written before any process starts); brokers 2 and 3 and the coordinators just wait.
func fakeBroker() {
	var cfg string
	for i, a := range os.Args {
		if a == "--config" && i+1 < len(os.Args) {
			cfg = os.Args[i+1]
		}
	}
	props, err := readProps(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var c *kfake.Cluster
	switch {
	case strings.HasSuffix(cfg, ".cfg"): // coordinator
	case props["coordinator.connect"] == "":
		parts, _ := strconv.Atoi(props["num.partitions"])
		c, err = kfake.NewCluster(kfake.Ports(listenPort(props)), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(parts))
	case props["broker.id"] == "1":
		var ports []int
		for id := 1; id <= 3; id++ {
			p, err := readProps(filepath.Join(filepath.Dir(cfg), fmt.Sprintf("broker%d.properties", id)))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			ports = append(ports, listenPort(p))
		}
		c, err = kfake.NewCluster(kfake.NumBrokers(3), kfake.Ports(ports...), kfake.AllowAutoTopicCreation())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	if c != nil {
		c.Close()
	}
}

func readProps(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	props := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			props[k] = v
		}
	}
	return props, nil
}

func listenPort(props map[string]string) int {
	_, portStr, _ := net.SplitHostPort(strings.TrimPrefix(props["listeners"], "PLAINTEXT://"))
	port, _ := strconv.Atoi(portStr)
	return port
}

// The local cluster path (configs, six subprocesses, registration wait, RF=3 topics, acks=all,
// stop), with the fake binaries.
func TestLocalClusterTarget(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("BENCH_FAKE_BROKER", "1")
	tg := localClusterTarget(self, self, 20*time.Second)
	st := newStore()
	cfg := config{runs: 1, records: 2000, size: 1024, partitions: []int{1}, latRate: 1000, latDur: 200 * time.Millisecond, timeout: time.Minute}
	var in *instance
	start := tg.start
	tg.start = func(ctx context.Context, p int) (*instance, error) {
		in, err = start(ctx, p)
		return in, err
	}
	run(context.Background(), cfg, []*target{tg}, st)
	if tg.unavailable != nil {
		t.Fatal(tg.unavailable)
	}
	if len(st.errs) > 0 {
		t.Fatalf("errors: %v", st.errs)
	}
	for _, scn := range []string{"produce acks=all RF=3 p=1", "consume RF=3 p=1"} {
		if len(st.thr[key{"drover-3brokers", scn}]) != 1 {
			t.Fatalf("no %q figure: %v", scn, st.thr)
		}
	}
	if len(st.lat[key{"drover-3brokers", "latency acks=all RF=3"}]) != 1 || len(st.lat[key{"drover-3brokers", "latency acks=1"}]) != 0 {
		t.Fatalf("latency figures: %v", st.lat)
	}
	if u := st.thr[key{"drover-3brokers", "produce acks=all RF=3 p=1"}][0].use; u == nil || !u.hasProcs {
		t.Fatalf("no usage sample: %+v", u)
	}
	// Everything it started is gone: the six processes and the directory.
	if len(in.pids) != 6 {
		t.Fatalf("pids %v", in.pids)
	}
	for _, pid := range in.pids {
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("process %d still running", pid)
		}
	}
	if _, err := os.Stat(in.logDir); !os.IsNotExist(err) {
		t.Errorf("%s left behind: %v", in.logDir, err)
	}
	if out := report(cfg, []*target{tg}, st); !strings.Contains(out, "acks=all RF=3") {
		t.Fatalf("report: %s", out)
	}
}

func TestClusterNotReady(t *testing.T) {
	tg := localClusterTarget("/bin/false", "/bin/false", 5*time.Second)
	run(context.Background(), config{runs: 1, records: 10, size: 10, partitions: []int{1}, latRate: 10, timeout: time.Second}, []*target{tg}, newStore())
	if tg.unavailable == nil || !strings.Contains(tg.unavailable.Error(), "exited") {
		t.Fatalf("got %v", tg.unavailable)
	}
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
