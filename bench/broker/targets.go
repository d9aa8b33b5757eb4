package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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
	logPath := filepath.Join(dir, "broker.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		cleanupDir()
		return nil, err
	}
	argv := strings.Fields(strings.ReplaceAll(args, "{config}", cfg))
	cmd := exec.Command(abs, argv...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Own process group so the whole tree is stopped; Pdeathsig covers the bench itself dying.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		cleanupDir()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		logFile.Close()
		cleanupDir()
	}
	fail := func(err error) (*instance, error) {
		stop()
		return nil, err
	}
	tail := func() string {
		b, _ := os.ReadFile(logPath)
		b = bytes.TrimSpace(b)
		if len(b) > 600 {
			b = b[len(b)-600:]
		}
		if len(b) == 0 {
			return "(no output)"
		}
		return strings.ReplaceAll(string(b), "\n", " | ")
	}
	deadline := time.Now().Add(wait)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case werr := <-exited:
			exited <- werr // stop() waits on it
			return fail(fmt.Errorf("exited before listening on %s (%v): %s", addr, werr, tail()))
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("not listening on %s after %s: %s", addr, wait, tail()))
		}
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
		return fail(fmt.Errorf("listens on %s but does not answer: %v; log: %s", addr, err, tail()))
	}
	return &instance{seeds: []string{addr}, consume: true, createRF: 1, close: stop}, nil
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
