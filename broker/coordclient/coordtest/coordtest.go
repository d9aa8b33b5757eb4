// Package coordtest starts in-process drover-coordinator ensembles for tests: real embedded
// etcd members on random loopback ports with temporary data dirs, stopped at test cleanup.
package coordtest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drover/drover/broker/coordinator"
	"go.uber.org/zap"
)

// Start starts an ensemble of the given size, waits until it has a leader and returns the
// members' client endpoints ("127.0.0.1:port"), ready for coordclient.Dial.
func Start(t testing.TB, members int) []string {
	t.Helper()
	return StartCluster(t, members).Endpoints()
}

// Cluster is a running in-process ensemble.
type Cluster struct {
	t       testing.TB
	Members []*coordinator.Member // index i is myid i+1
	Configs []*coordinator.Config
	lns     []net.Listener
}

// StartCluster is Start with access to the members, e.g. to kill the leader.
func StartCluster(t testing.TB, members int) *Cluster {
	t.Helper()
	if members < 1 {
		t.Fatalf("coordtest: need at least one member, got %d", members)
	}
	root := t.TempDir()
	c := &Cluster{t: t}
	for range members {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("coordtest: client listener: %v", err)
		}
		c.lns = append(c.lns, ln)
	}
	// etcd binds the peer ports itself, so they are found free and released again; the window
	// for another process to grab one is tiny. They are held open together while chosen, so two
	// members never get the same port.
	peerPorts := freePorts(t, members)
	var servers strings.Builder
	for i := range members {
		fmt.Fprintf(&servers, "server.%d=127.0.0.1:%d:%d;%d\n", i+1, peerPorts[i], peerPorts[i], c.lns[i].Addr().(*net.TCPAddr).Port)
	}
	for i := range members {
		dir := filepath.Join(root, fmt.Sprintf("zk%d", i+1))
		text := fmt.Sprintf("tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=%s\nclientPortAddress=127.0.0.1\nclientPort=%d\nadmin.serverPort=0\n%s",
			dir, c.lns[i].Addr().(*net.TCPAddr).Port, servers.String())
		cfg, _, err := coordinator.Parse(filepath.Join(dir, "zoo.cfg"), strings.NewReader(text))
		if err != nil {
			t.Fatalf("coordtest: config: %v", err)
		}
		if err := coordinator.WriteMyID(dir, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
		if err := cfg.ReadMyID(); err != nil {
			t.Fatal(err)
		}
		c.Configs = append(c.Configs, cfg)
	}
	c.Members = make([]*coordinator.Member, members)
	for i := range members {
		m, err := coordinator.Start(c.Configs[i], coordinator.Options{
			Logger:         testLogger(),
			EtcdLogger:     etcdLogger(),
			ClientListener: c.lns[i],
			Version:        "test",
		})
		if err != nil {
			c.stop()
			t.Fatalf("coordtest: start member %d: %v", i+1, err)
		}
		c.Members[i] = m
	}
	t.Cleanup(c.stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, m := range c.Members {
		if err := m.WaitReady(ctx); err != nil {
			t.Fatalf("coordtest: member %d: %v", i+1, err)
		}
	}
	return c
}

// Endpoints are the members' client addresses.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.Members))
	for i, m := range c.Members {
		eps[i] = m.ClientAddr()
	}
	return eps
}

// Leader returns the index of the member that currently leads, or -1.
func (c *Cluster) Leader() int {
	for i, m := range c.Members {
		if m == nil {
			continue
		}
		select {
		case <-m.Stopped():
			continue
		default:
		}
		if m.IsLeader() {
			return i
		}
	}
	return -1
}

// stop kills the members: cleanup needs no graceful leadership transfer, and members
// stopping together would wait for each other.
func (c *Cluster) stop() {
	var wg sync.WaitGroup
	for _, m := range c.Members {
		if m != nil {
			wg.Go(m.Kill)
		}
	}
	wg.Wait()
	for _, ln := range c.lns {
		ln.Close()
	}
}

func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("coordtest: free port: %v", err)
		}
		defer ln.Close()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports
}

// Set DROVER_TEST_COORD_LOG=1 to see the members' logs.
func verbose() bool { return os.Getenv("DROVER_TEST_COORD_LOG") != "" }

func testLogger() *slog.Logger {
	if verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

func etcdLogger() *zap.Logger {
	if verbose() {
		l, _ := zap.NewDevelopment()
		return l
	}
	return zap.NewNop()
}
