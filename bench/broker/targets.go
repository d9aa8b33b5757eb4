package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// target is one thing the client is pointed at. start brings up a fresh instance whose topics get
// `partitions` partitions, so every measurement starts from the same empty state.
type target struct {
	name        string
	start       func(ctx context.Context, partitions int) (*instance, error)
	unavailable error // set once the target cannot start; it is skipped from then on
}

type instance struct {
	seeds      []string
	consume    bool // serves Fetch (the null sink does not)
	createRF   int  // >0: create topics through CreateTopics with this replication factor
	replicated bool // a multi-broker cluster: produce scenarios are acks=all RF=createRF
	topics     []string
	close      func()
	pids       []int  // processes serving this instance (CPU and write accounting); none: in-process or external
	logDir     string // where they write (the disk whose device counters are sampled); "": none
}

func (in *instance) Close() {
	if in.close != nil {
		in.close()
	}
}

// createTopic makes topic with the given partitions; a broker without CreateTopics falls back on
// auto-creation (the producer asks for it in Metadata).
func (in *instance) createTopic(ctx context.Context, topic string, partitions int) error {
	in.topics = append(in.topics, topic)
	if in.createRF == 0 {
		return nil
	}
	adm, err := kadm.NewOptClient(kgo.SeedBrokers(in.seeds...))
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	_, err = adm.CreateTopic(ctx, int32(partitions), int16(in.createRF), nil, topic)
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		if in.createRF > 1 {
			return fmt.Errorf("create topic %s RF=%d: %w", topic, in.createRF, err)
		}
		logf("  note: CreateTopics failed (%v); relying on auto-creation", err)
	}
	return nil
}

func kfakeTarget() *target {
	return &target{name: "kfake", start: func(_ context.Context, partitions int) (*instance, error) {
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(),
			kfake.DefaultNumPartitions(partitions))
		if err != nil {
			return nil, fmt.Errorf("kfake: %w", err)
		}
		return &instance{seeds: c.ListenAddrs(), consume: true, createRF: 1, close: c.Close}, nil
	}}
}

func nullTarget() *target {
	return &target{name: "null", start: func(_ context.Context, partitions int) (*instance, error) {
		s, err := startNullSink(partitions)
		if err != nil {
			return nil, err
		}
		return &instance{seeds: []string{s.Addr()}, close: s.Close}, nil
	}}
}

// droverTarget runs the broker binary in standalone mode (no coordinator.connect) on a fresh log dir.
func droverTarget(bin, args string, wait time.Duration) *target {
	return &target{name: "drover-broker", start: func(ctx context.Context, partitions int) (*instance, error) {
		return startDrover(ctx, bin, args, wait, partitions)
	}}
}

func startDrover(ctx context.Context, bin, args string, wait time.Duration, partitions int) (*instance, error) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("%s: %w (run `make build`)", bin, err)
	}
	dir, err := os.MkdirTemp("", "drover-bench-broker-")
	if err != nil {
		return nil, err
	}
	cleanupDir := func() { os.RemoveAll(dir) }
	port, err := freePort()
	if err != nil {
		cleanupDir()
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	props := fmt.Sprintf("broker.id=1\nlisteners=PLAINTEXT://%s\nadvertised.listeners=PLAINTEXT://%s\n"+
		"log.dirs=%s\nauto.create.topics.enable=true\nnum.partitions=%d\n",
		addr, addr, filepath.Join(dir, "logs"), partitions)
	cfg := filepath.Join(dir, "server.properties")
	if err := os.WriteFile(cfg, []byte(props), 0o644); err != nil {
		cleanupDir()
		return nil, err
	}
	argv := strings.Fields(strings.ReplaceAll(args, "{config}", cfg))
	p, err := startProc("drover-broker", abs, argv, dir, filepath.Join(dir, "broker.log"))
	if err != nil {
		cleanupDir()
		return nil, err
	}
	stop := func() {
		stopAll([]*proc{p}, 10*time.Second)
		cleanupDir()
	}
	fail := func(err error) (*instance, error) {
		stop()
		return nil, err
	}
	if err := waitListening(ctx, p, addr, wait); err != nil {
		return fail(err)
	}
	// Listening is not serving: require an ApiVersions/Metadata round trip.
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return fail(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = cl.Ping(pctx)
	cancel()
	cl.Close()
	if err != nil {
		return fail(fmt.Errorf("listens on %s but does not answer: %v; log: %s", addr, err, p.tail()))
	}
	return &instance{seeds: []string{addr}, consume: true, createRF: 1, close: stop,
		pids: []int{p.pid()}, logDir: dir}, nil
}

// waitListening polls addr until it accepts a connection, p exits, ctx ends or wait passes.
func waitListening(ctx context.Context, p *proc, addr string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if dead, werr := p.dead(); dead {
			return fmt.Errorf("%s exited before listening on %s (%v): %s", p.name, addr, werr, p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening on %s after %s: %s", p.name, addr, wait, p.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// clusterTarget points at an already running multi-broker drover cluster; topics are created
// with RF=3 and deleted after each measurement.
func clusterTarget(seeds []string) *target {
	return &target{name: "drover-3brokers", start: func(ctx context.Context, _ int) (*instance, error) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
		if err != nil {
			return nil, err
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = cl.Ping(pctx)
		cancel()
		cl.Close()
		if err != nil {
			return nil, fmt.Errorf("cluster %s does not answer: %w", strings.Join(seeds, ","), err)
		}
		in := &instance{seeds: seeds, consume: true, createRF: 3, replicated: true}
		in.close = func() {
			adm, err := kadm.NewOptClient(kgo.SeedBrokers(seeds...))
			if err != nil {
				return
			}
			defer adm.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _ = adm.DeleteTopics(ctx, in.topics...)
		}
		return in, nil
	}}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
