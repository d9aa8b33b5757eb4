// Command droverapply is drover's side of bench/fanout: a broker-sized plan applied to every host
// of a farm inventory through drover's real controller code path (provisioner/sshx pool,
// provisioner/engine Runner with the Connect, EnsureAgent, PushArtifacts and Apply phases, the
// plain display and the run log, as `drover provision` wires them), with each host's node paths
// rewritten under its temporary root (the engine's Rooted connection: the agent runs with --root).
//
// The plan is plan.Tasks for a broker of a 3-coordinator cluster, except that the farm hosts have
// no systemd: the unit task becomes a file task writing the same unit bytes to the same path, and
// the service task a file task of the same size (its parameters) under /etc/drover.
//
//	droverapply -i INVENTORY -F SSH_CONFIG -setup    # seed the roots, converge (not timed)
//	droverapply -i INVENTORY -F SSH_CONFIG           # the measured run: must change nothing
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/drover/drover/agent/protocol"
	"github.com/drover/drover/provisioner/display"
	"github.com/drover/drover/provisioner/engine"
	"github.com/drover/drover/provisioner/inventory"
	"github.com/drover/drover/provisioner/plan"
	"github.com/drover/drover/provisioner/sshx"
)

func main() {
	inv := flag.String("i", "", "farm inventory (bench/fanout/farm: drover_root per host)")
	sshConfig := flag.String("F", "", "farm ssh_config")
	forks := flag.Int("forks", 50, "hosts worked on in parallel (drover's --forks default)")
	binDir := flag.String("bin-dir", "bin", "where drover-agent and drover-broker are")
	setup := flag.Bool("setup", false, "seed every root (passwd/group, binaries hard-linked into the store) and converge; "+
		"without it the run must change nothing (exit 3 otherwise)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the controller to this file")
	memProfile := flag.String("memprofile", "", "write a heap profile (at the end) to this file")
	skipPre := flag.Bool("connect-apply-only", false, "diagnosis only: run just the Connect and Apply phases (the agent and "+
		"artifact are already on the hosts), to see what one session per host would cost")
	phased := flag.Bool("phased", false, "diagnosis only: wait for every host between phases instead of drover's per-host pipeline")
	flag.Parse()
	if *inv == "" || *sshConfig == "" {
		fmt.Fprintln(os.Stderr, "usage: droverapply -i INVENTORY -F SSH_CONFIG [-setup] [-forks N] [-bin-dir bin]")
		os.Exit(2)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, *inv, *sshConfig, *binDir, *forks, *setup, *skipPre, !*phased)
	stop()
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		if f, err := os.Create(*memProfile); err == nil {
			runtime.GC()
			_ = pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	os.Exit(code)
}

// rootedConn is an SSH connection whose node paths live under root: the engine then runs the agent
// as <root>/opt/drover/bin/drover-agent --root <root>, and the agent maps every path under it.
type rootedConn struct {
	*sshx.Client
	root string
}

func (c rootedConn) NodeRoot() string { return c.root }

func run(ctx context.Context, invPath, sshConfig, binDir string, forks int, setup, connectApplyOnly, pipelined bool) int {
	t0 := time.Now()
	inv, err := inventory.Load(invPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pool, err := sshx.NewPool(sshx.Options{ConfigFile: sshConfig, Forks: forks, AgentSocket: "none",
		Warnf: func(f string, a ...any) { fmt.Fprintf(os.Stderr, "warning: "+f+"\n", a...) }})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer pool.Close()

	broker := &engine.Artifact{Name: "drover-broker", Path: filepath.Join(binDir, "drover-broker")}
	agentPath := filepath.Join(binDir, "drover-agent")

	// The cluster a real broker's plan is rendered against: 3 coordinators, every farm host a
	// broker with the local inventory's broker settings.
	vars := map[string]any{"heap": "256m", "num_partitions": 3, "default_replication_factor": 3, "min_insync_replicas": 2}
	var cluster plan.Cluster
	for i := 1; i <= 3; i++ {
		cluster.Coordinators = append(cluster.Coordinators, plan.Node{Host: fmt.Sprintf("zk%d", i), ID: i, Address: fmt.Sprintf("10.0.0.%d", i), Vars: vars})
	}
	roots := map[string]string{}
	nodes := map[string]plan.Node{}
	var hosts []*engine.Host
	for i, h := range inv.Hosts {
		root, _ := h.Vars["drover_root"].(string)
		if root == "" {
			fmt.Fprintf(os.Stderr, "%s: no drover_root variable (not a farm inventory?)\n", h.Name)
			return 1
		}
		roots[h.Name] = root
		ep, err := pool.Resolve(sshx.TargetFor(h))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		n := plan.Node{Host: h.Name, ID: i + 1, Address: ep.HostName, Vars: vars}
		nodes[h.Name] = n
		cluster.Brokers = append(cluster.Brokers, n)
		hosts = append(hosts, &engine.Host{Name: h.Name, Data: h})
	}
	if setup {
		brokerSHA, err := broker.SHA256()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if err := seed(invPath, roots, agentPath, broker.Path, brokerSHA); err != nil {
			fmt.Fprintln(os.Stderr, "seed:", err)
			return 1
		}
	}

	// As in `drover provision`: the artifact is hashed (and compressed) by PushArtifacts' Prepare;
	// the plan asks for the hash afterwards.
	planFor := func(h *engine.Host) ([]protocol.Task, []string, error) {
		brokerSHA, err := broker.SHA256()
		if err != nil {
			return nil, nil, err
		}
		tasks, err := plan.Tasks(cluster, nodes[h.Name], plan.RoleBroker, brokerSHA)
		if err != nil {
			return nil, nil, err
		}
		return withoutSystemd(tasks), plan.Owned, nil
	}
	runlog, err := display.OpenRunLog("bench-fanout")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer runlog.Close()
	d, err := display.New(display.Options{Mode: display.ModePlain, Out: os.Stdout, Err: os.Stderr, RunLog: runlog.Path()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ph := &phaseTimes{}
	r := &engine.Runner{Forks: forks, Sink: engine.Tee(d, runlog, ph)}
	artsFor := func(h *engine.Host) []*engine.Artifact { return []*engine.Artifact{broker} }
	phases := []engine.Phase{
		engine.Connect{Dial: func(ctx context.Context, h *engine.Host) (engine.Conn, error) {
			c, err := pool.Connect(ctx, sshx.TargetFor(h.Data.(*inventory.Host)))
			if err != nil {
				return nil, err
			}
			h.Sudo = c.User() != "root"
			return rootedConn{Client: c, root: roots[h.Name]}, nil
		}},
		&engine.EnsureAgent{Path: agentPath, Artifacts: artsFor},
		&engine.PushArtifacts{For: artsFor},
		&engine.Apply{Name: "apply brokers", Plan: planFor},
	}
	if connectApplyOnly && !setup {
		phases = []engine.Phase{phases[0], phases[3]}
	}
	// as drover provision does: each host runs its steps back to back, no barrier in between, and
	// agent check + artifact check + apply share one session when nothing is missing
	if pipelined && !(connectApplyOnly && !setup) {
		phases = []engine.Phase{engine.Pipeline("connect, converge", phases[0],
			&engine.Converge{Agent: phases[1].(*engine.EnsureAgent), Push: phases[2].(*engine.PushArtifacts), Apply: phases[3].(*engine.Apply)})}
	}
	res := r.Run(ctx, hosts, phases...)
	d.Finish(res)
	// One line bench/fanout parses into its "where the time goes" table.
	fmt.Fprintf(os.Stderr, "droverapply phases:%s\n", ph.String())
	fmt.Fprintf(os.Stderr, "droverapply: %d hosts, %d changed, exit %d, engine %s, process %s (setup=%v)\n",
		len(hosts), res.Changed(), res.ExitCode(), res.Duration.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), setup)
	if res.ExitCode() != 0 {
		return res.ExitCode()
	}
	if !setup && res.Changed() != 0 {
		fmt.Fprintf(os.Stderr, "droverapply: the measured run must be a no-op, %d tasks changed\n", res.Changed())
		return 3
	}
	return 0
}

// phaseTimes records each phase's wall time (start to done, so including its controller-side
// Prepare) and the Prepare part alone.
type phaseTimes struct {
	mu    sync.Mutex
	start map[string]time.Time
	list  []string
}

func (p *phaseTimes) Handle(ev engine.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev.Type {
	case engine.EventPhaseStart:
		if p.start == nil {
			p.start = map[string]time.Time{}
		}
		p.start[ev.Phase] = ev.Time
	case engine.EventPhaseDone:
		st := p.start[ev.Phase]
		total := ev.Time.Sub(st)
		prep := total - ev.Elapsed
		if ev.Elapsed == 0 || prep < 0 {
			prep = 0
		}
		p.list = append(p.list, fmt.Sprintf(" %s=%.3f/%.3f", strings.ReplaceAll(ev.Phase, " ", "_"), total.Seconds(), prep.Seconds()))
	}
}

// String is " phase=total/prepare ..." in seconds.
func (p *phaseTimes) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.list, "")
}

// withoutSystemd swaps the systemd-bound tasks of a broker plan for file tasks of the same size:
// the unit's bytes to the unit's path, the service task's parameters to a file under /etc/drover.
func withoutSystemd(tasks []protocol.Task) []protocol.Task {
	out := make([]protocol.Task, 0, len(tasks))
	for _, t := range tasks {
		switch t.Kind {
		case protocol.KindUnit:
			var p protocol.UnitParams
			_ = json.Unmarshal(t.Params, &p)
			path := p.Path
			if path == "" {
				path = "/etc/systemd/system/" + p.Name
			}
			nt := protocol.NewTask(t.ID, protocol.FileParams{Path: path, Content: p.Content, Mode: "0644", Owner: "root", Group: "root"})
			nt.OnlyIfChanged = t.OnlyIfChanged
			out = append(out, nt)
		case protocol.KindService:
			nt := protocol.NewTask(t.ID, protocol.FileParams{Path: plan.EtcDir + "/.bench-service-state", Content: string(t.Params) + "\n",
				Mode: "0644", Owner: "root", Group: "root"})
			out = append(out, nt)
		default:
			out = append(out, t)
		}
	}
	return out
}

// seed prepares every host root like a node that has been provisioned once, minus the
// uploads: /etc/passwd and /etc/group with root and the broker's system user (useradd --prefix
// needs a populated root), and the agent and broker binaries hard-linked into the store with the
// agent's symlink (500 separate uploads of 25 MB would only fill the disk; the measured no-op run
// finds them present, as on a real node). The converge that follows creates everything else.
func seed(invPath string, roots map[string]string, agentPath, brokerPath, brokerSHA string) error {
	agentSHA, err := (&engine.Artifact{Name: "drover-agent", Path: agentPath}).SHA256()
	if err != nil {
		return err
	}
	cache := filepath.Join(filepath.Dir(invPath), "binaries")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	masters := map[string]string{agentSHA: agentPath, brokerSHA: brokerPath}
	for sha, src := range masters {
		dst := filepath.Join(cache, sha)
		if _, err := os.Stat(dst); err != nil {
			if err := copyFile(src, dst); err != nil {
				return err
			}
		}
		masters[sha] = dst
	}
	for _, root := range roots {
		etc := filepath.Join(root, "etc")
		store := filepath.Join(root, protocol.StoreDir)
		bin := filepath.Join(root, protocol.BinDir)
		for _, d := range []string{etc, store, bin} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		if err := writeIfMissing(filepath.Join(etc, "passwd"), "root:x:0:0:root:/root:/bin/sh\ndrover-broker:x:999:997::/var/lib/drover/broker:/usr/sbin/nologin\n"); err != nil {
			return err
		}
		if err := writeIfMissing(filepath.Join(etc, "group"), "root:x:0:\ndrover-broker:x:997:\n"); err != nil {
			return err
		}
		for sha, src := range masters {
			dst := filepath.Join(store, sha)
			if _, err := os.Stat(dst); err == nil {
				continue
			}
			if err := os.Link(src, dst); err != nil {
				return err
			}
		}
		link := filepath.Join(bin, "drover-agent")
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink("../store/"+agentSHA, link); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeIfMissing(path, content string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp" + strconv.Itoa(os.Getpid())
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
