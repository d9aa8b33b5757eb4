package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const clusterSize = 3

// localClusterTarget starts, for every measurement, a fresh drover cluster of 3 drover-coordinator
// and 3 drover-broker subprocesses on loopback (random ports, one temporary dir), the way
// broker/kafka/testdata/run-kgo-suite-cluster.sh does; topics are created with RF=3 and
// produced with acks=all.
func localClusterTarget(coordBin, brokerBin string, wait time.Duration) *target {
	return &target{name: "drover-3brokers", start: func(ctx context.Context, _ int) (*instance, error) {
		return startCluster(ctx, coordBin, brokerBin, wait)
	}}
}

func startCluster(ctx context.Context, coordBin, brokerBin string, wait time.Duration) (*instance, error) {
	var bins [2]string
	for i, b := range []string{coordBin, brokerBin} {
		abs, err := filepath.Abs(b)
		if err != nil {
			return nil, err
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("%s: %w (run `make build`)", b, err)
		}
		bins[i] = abs
	}
	dir, err := os.MkdirTemp("", "drover-bench-cluster-")
	if err != nil {
		return nil, err
	}
	// coordinators: client, peer, election (accepted, unused); brokers: kafka.
	ports := make([]int, 4*clusterSize)
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	client := func(i int) int { return ports[i] }
	peer := func(i int) int { return ports[clusterSize+i] }
	election := func(i int) int { return ports[2*clusterSize+i] }
	kafka := func(i int) int { return ports[3*clusterSize+i] }
	addr := func(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

	// All configs first, then the processes.
	var servers, connect, seeds []string
	for i := 0; i < clusterSize; i++ {
		servers = append(servers, fmt.Sprintf("server.%d=127.0.0.1:%d:%d;%d", i+1, peer(i), election(i), client(i)))
		connect = append(connect, addr(client(i)))
		seeds = append(seeds, addr(kafka(i)))
	}
	var coordCfgs, brokerCfgs []string
	for i := 0; i < clusterSize; i++ {
		data := filepath.Join(dir, fmt.Sprintf("coordinator%d", i+1))
		if err := os.MkdirAll(data, 0o755); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(data, "myid"), []byte(strconv.Itoa(i+1)+"\n"), 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		zoo := fmt.Sprintf("tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=%s\nclientPortAddress=127.0.0.1\n"+
			"clientPort=%d\nadmin.serverPort=0\n%s\n", data, client(i), strings.Join(servers, "\n"))
		cfg := filepath.Join(dir, fmt.Sprintf("zoo%d.cfg", i+1))
		props := fmt.Sprintf("broker.id=%d\nlisteners=PLAINTEXT://%s\nadvertised.listeners=PLAINTEXT://%s\n"+
			"log.dirs=%s\ncoordinator.connect=%s\nnum.partitions=1\ndefault.replication.factor=%d\n"+
			"min.insync.replicas=2\nadmin.listener=127.0.0.1:0\ngroup.initial.rebalance.delay.ms=0\n",
			i+1, seeds[i], seeds[i], filepath.Join(dir, fmt.Sprintf("logs%d", i+1)), strings.Join(connect, ","), clusterSize)
		bcfg := filepath.Join(dir, fmt.Sprintf("broker%d.properties", i+1))
		if err := os.WriteFile(cfg, []byte(zoo), 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		if err := os.WriteFile(bcfg, []byte(props), 0o644); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		coordCfgs = append(coordCfgs, cfg)
		brokerCfgs = append(brokerCfgs, bcfg)
	}

	var coords, brokers []*proc
	stop := func() {
		// Brokers first: their graceful stop talks to the coordinators.
		stopAll(brokers, 15*time.Second)
		stopAll(coords, 5*time.Second)
		os.RemoveAll(dir)
	}
	fail := func(err error) (*instance, error) {
		stop()
		return nil, err
	}
	for i, cfg := range coordCfgs {
		p, err := startProc(fmt.Sprintf("drover-coordinator %d", i+1), bins[0], []string{"--config", cfg}, dir,
			filepath.Join(dir, fmt.Sprintf("coordinator%d.log", i+1)))
		if err != nil {
			return fail(err)
		}
		coords = append(coords, p)
	}
	for i, cfg := range brokerCfgs {
		p, err := startProc(fmt.Sprintf("drover-broker %d", i+1), bins[1], []string{"--config", cfg}, dir,
			filepath.Join(dir, fmt.Sprintf("broker%d.log", i+1)))
		if err != nil {
			return fail(err)
		}
		brokers = append(brokers, p)
	}
	all := append(append([]*proc(nil), coords...), brokers...)
	t0 := time.Now()
	if err := waitRegistered(ctx, all, brokers, seeds, wait); err != nil {
		return fail(err)
	}
	logf("  drover-3brokers: 3 coordinators + 3 brokers registered in %.1fs", time.Since(t0).Seconds())
	var pids []int
	for _, p := range all {
		pids = append(pids, p.pid())
	}
	return &instance{seeds: seeds, consume: true, createRF: clusterSize, replicated: true, close: stop,
		pids: pids, logDir: dir}, nil
}

// waitRegistered polls every broker with a Metadata request until each lists all the brokers
// (they registered through the coordinators, so those have a quorum too). It fails early when a
// process exits.
func waitRegistered(ctx context.Context, procs, brokers []*proc, seeds []string, wait time.Duration) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RetryTimeout(time.Second),
		kgo.DialTimeout(500*time.Millisecond), kgo.RequestRetries(0))
	if err != nil {
		return err
	}
	defer cl.Close()
	deadline := time.Now().Add(wait)
	var last string
	for {
		ready := 0
		last = ""
		for i, b := range cl.SeedBrokers() {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			resp, err := b.Request(rctx, kmsg.NewPtrMetadataRequest())
			cancel()
			switch {
			case err != nil:
				last += fmt.Sprintf(" broker %d: %v;", i+1, err)
			case len(resp.(*kmsg.MetadataResponse).Brokers) < len(seeds):
				last += fmt.Sprintf(" broker %d lists %d brokers;", i+1, len(resp.(*kmsg.MetadataResponse).Brokers))
			default:
				ready++
			}
		}
		if ready == len(seeds) {
			return nil
		}
		for _, p := range procs {
			if dead, werr := p.dead(); dead {
				return fmt.Errorf("%s exited (%v): %s", p.name, werr, p.tail())
			}
		}
		if time.Now().After(deadline) {
			var tails []string
			for _, p := range brokers {
				tails = append(tails, p.name+": "+p.tail())
			}
			return fmt.Errorf("cluster not ready after %s:%s %s", wait, last, strings.Join(tails, " / "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
