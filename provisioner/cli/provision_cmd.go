package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/drover/drover/agent/protocol"
	"github.com/drover/drover/provisioner/display"
	"github.com/drover/drover/provisioner/engine"
	"github.com/drover/drover/provisioner/health"
	"github.com/drover/drover/provisioner/plan"
	"github.com/drover/drover/provisioner/rolling"
)

func init() {
	Register(&Command{Name: "provision", Summary: "converge coordinators and brokers to the inventory (idempotent, parallel)", Run: runProvision})
}

// runFlags are the flags of commands that run phases through the engine.
type runFlags struct {
	HostFlags
	progress string
	verbose  bool
	binDir   string
	direct   bool
	output   string
}

func (f *runFlags) register(fs *flag.FlagSet) {
	f.HostFlags.Register(fs)
	fs.StringVar(&f.progress, "progress", "auto", "progress display: auto|tty|plain|json (auto = tty when stderr is a terminal)")
	fs.BoolVar(&f.verbose, "v", false, "verbose: show every task, not only changes")
	fs.StringVar(&f.binDir, "bin-dir", "", "where the drover-agent, drover-broker and drover-coordinator binaries are (default: next to drover, then ./bin)")
	fs.BoolVar(&f.direct, "direct", false, "reach the services directly from here instead of through the SSH connections")
	fs.StringVar(&f.output, "output", "table", "report format: table|json")
}

func runProvision(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	var f runFlags
	f.register(fs)
	check := fs.Bool("check", false, "report what would change, change nothing")
	fs.BoolVar(check, "C", false, "short for --check")
	diff := fs.Bool("diff", false, "show the diffs of files and units")
	fs.BoolVar(diff, "D", false, "short for --diff")
	noHealth := fs.Bool("skip-health", false, "do not run the final health check and canary")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: drover provision -i INVENTORY [--limit P] [--check] [--diff] [flags]\n\n"+
			"Converges every coordinator and broker host: agent, binaries, users, data dirs, ids, configs,\n"+
			"units, services. Coordinators first (waits for quorum), then brokers (waits until registered);\n"+
			"services whose binary, config or unit changed restart one at a time through the rolling path;\n"+
			"then the cluster's health is checked. A second run changes nothing. Data is never deleted.\n"+
			"Exit status: 0 ok, 2 a host failed or the cluster is unhealthy, 4 a host was unreachable.\n\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	cr, err := loadCluster(&f.HostFlags, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "drover provision: %v\n", err)
		return ExitFailed
	}
	defer cr.close()
	arts := map[string]*engine.Artifact{}
	var agentPath string
	for _, name := range []string{"drover-agent", "drover-coordinator", "drover-broker"} {
		p, err := artifactPath(f.binDir, name)
		if err != nil {
			fmt.Fprintf(stderr, "drover provision: %v\n", err)
			return ExitFailed
		}
		arts[name] = &engine.Artifact{Name: name, Path: p}
		if name == "drover-agent" {
			agentPath = p
		}
	}
	roleArt := map[string]*engine.Artifact{plan.RoleCoordinator: arts["drover-coordinator"], plan.RoleBroker: arts["drover-broker"]}

	ctx, stop := engine.WithInterrupt(ctx, stderr)
	defer stop()
	runlog, err := display.OpenRunLog("provision")
	if err != nil {
		fmt.Fprintf(stderr, "drover provision: %v\n", err)
		return ExitFailed
	}
	defer runlog.Close()
	d, err := display.New(display.Options{Mode: f.progress, Out: stdout, Err: stderr, Diff: *diff, Verbose: boolInt(f.verbose), RunLog: runlog.Path()})
	if err != nil {
		fmt.Fprintf(stderr, "drover provision: %v\n", err)
		return ExitFailed
	}
	isRole := func(role string) func(h *engine.Host) bool {
		return func(h *engine.Host) bool { return cr.roles[h.Name] == role }
	}
	planFor := func(h *engine.Host) ([]protocol.Task, []string, error) {
		role := cr.roles[h.Name]
		sha, err := roleArt[role].SHA256()
		if err != nil {
			return nil, nil, err
		}
		tasks, err := plan.Tasks(cr.cluster, cr.nodes[h.Name], role, sha)
		return tasks, plan.Owned, err
	}
	artsFor := func(h *engine.Host) []*engine.Artifact { return []*engine.Artifact{roleArt[cr.roles[h.Name]]} }
	agent := &engine.EnsureAgent{Path: agentPath, Artifacts: artsFor}
	push := &engine.PushArtifacts{For: artsFor}
	r := &engine.Runner{Forks: f.Forks, Check: *check, Diff: *diff, Sink: engine.Tee(d, runlog)}
	dial := cr.dialer(f.direct)
	// Two barriers only where the cluster needs them: every coordinator in quorum before any
	// broker is configured. Within each half a host runs its steps back to back.
	res := r.Run(ctx, cr.hosts,
		engine.Pipeline("connect, agent, artifacts, coordinators",
			engine.Connect{Dial: cr.engineDial},
			// brokers get their agent and binary now, while the coordinators start
			engine.Only(agent, isRole(plan.RoleBroker)),
			engine.Only(push, isRole(plan.RoleBroker)),
			// coordinators: one session when agent and binary are already there
			&engine.Converge{Agent: agent, Push: push,
				Apply: &engine.Apply{Name: "apply coordinators", Select: isRole(plan.RoleCoordinator), Plan: planFor}},
			engine.Only(&waitPhase{title: "wait for quorum", fn: func(ctx context.Context, h *engine.Host) error {
				return waitMember(ctx, dial, net.JoinHostPort(cr.nodes[h.Name].Address, strconv.Itoa(plan.ClientPort)))
			}}, isRole(plan.RoleCoordinator))),
		engine.Pipeline("brokers",
			&engine.Apply{Name: "apply brokers", Select: isRole(plan.RoleBroker), Plan: planFor},
			engine.Only(&waitPhase{title: "wait until registered", fn: func(ctx context.Context, h *engine.Host) error {
				return waitRegistered(ctx, dial, cr, h.Name)
			}}, isRole(plan.RoleBroker))),
	)
	code := res.ExitCode()

	// Running services whose inputs changed restart one node at a time, health-gated.
	var pending []rolling.Node
	for _, h := range cr.hosts {
		if h.Failed() || !h.Changed(plan.RestartTriggers...) {
			continue
		}
		if ev, ok := h.Result(plan.TaskService); ok && strings.Contains(ev.Msg, "start") {
			continue // started by this very run with its new inputs
		}
		pending = append(pending, rolling.Node{Host: h.Name, Role: cr.roles[h.Name], ID: cr.nodes[h.Name].ID})
	}
	var rollErr error
	if len(pending) > 0 && *check {
		for _, n := range pending {
			fmt.Fprintf(stderr, "%s: would restart %s (rolling, after the other changes)\n", n.Host, plan.Services[n.Role].Unit)
		}
	} else if len(pending) > 0 && code == ExitOK {
		ho, err := cr.healthOptions(false)
		if err == nil {
			fmt.Fprintf(stderr, "rolling restart of %d node(s) whose binary, config or unit changed\n", len(pending))
			rr := rolling.Roll(ctx, rolling.Options{Cluster: ho, Nodes: pending, Dial: dial,
				Restart: func(ctx context.Context, n rolling.Node) error { return restartService(ctx, cr.byName[n.Host], n.Role) },
				Log:     func(host, msg string) { fmt.Fprintf(stderr, "%s: %s\n", host, msg) }})
			if rr.Err != "" {
				err = errors.New(rr.Err)
			}
		}
		rollErr = err
	}
	d.Finish(res)
	if rollErr != nil {
		fmt.Fprintf(stderr, "drover provision: rolling restart: %v\n", rollErr)
		if code == ExitOK {
			code = ExitFailed
		}
	}
	if code != ExitOK || *check || *noHealth {
		return code
	}
	return printHealth(ctx, cr, dial, true, f.output, stdout)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// waitPhase is a wait that only makes sense when things really changed: check mode skips it.
type waitPhase struct {
	title string
	fn    func(ctx context.Context, h *engine.Host) error
}

func (w *waitPhase) Title() string { return w.title }
func (w *waitPhase) Run(ctx context.Context, h *engine.Host) error {
	h.Step(w.title)
	t0 := time.Now()
	if err := w.fn(ctx, h); err != nil {
		return err
	}
	h.Report(w.title, protocol.StatusOK, "after "+time.Since(t0).Round(time.Millisecond).String())
	return nil
}
func (w *waitPhase) DryRun(ctx context.Context, h *engine.Host) error {
	h.Report(w.title, protocol.StatusSkipped, "check mode")
	return nil
}

// waitMember polls a coordinator until it serves as leader or follower (or standalone).
func waitMember(ctx context.Context, dial health.Dialer, addr string) error {
	return poll(ctx, 3*time.Minute, func() error {
		reply, err := health.FourLetter(ctx, dial, addr, "srvr")
		if err != nil {
			return err
		}
		_, _, err = health.ParseSrvr(reply)
		return err
	})
}

// waitRegistered polls the broker on host until the cluster metadata lists its id.
func waitRegistered(ctx context.Context, dial health.Dialer, cr *clusterRun, host string) error {
	n := cr.nodes[host]
	adv, err := plan.AdvertisedListener(n)
	if err != nil {
		return err
	}
	_, addr, _ := cutScheme(adv)
	return poll(ctx, 3*time.Minute, func() error {
		cl, err := health.Client(dial, []string{addr})
		if err != nil {
			return err
		}
		defer cl.Close()
		b := health.CheckBrokers(ctx, cl, []health.Target{{Host: host, ID: n.ID, Addr: addr}})
		if len(b.Brokers) == 1 && b.Brokers[0].Registered {
			return nil
		}
		return fmt.Errorf("broker.id %d not registered yet: %s", n.ID, strings.Join(b.Problems, "; "))
	})
}

// poll retries fn until it succeeds, ctx ends or timeout passes; the last error explains a timeout.
func poll(ctx context.Context, timeout time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(150 * time.Millisecond):
		}
	}
}

// restartService restarts a role's unit through the agent (systemd's restart job; Type=notify
// makes it return once the service says READY).
func restartService(ctx context.Context, h *engine.Host, role string) error {
	if h == nil {
		return errors.New("host not connected")
	}
	req := protocol.Request{Version: protocol.ProtocolVersion, Owned: plan.Owned, Tasks: []protocol.Task{
		protocol.NewTask("restart", protocol.ServiceParams{Name: plan.Services[role].Unit, State: protocol.StateRestarted, Timeout: "5m"}),
	}}
	_, err := engine.RunAgent(ctx, h, req)
	return err
}

// printHealth runs the full health check and prints it; exit 0 only when healthy.
func printHealth(ctx context.Context, cr *clusterRun, dial health.Dialer, canary bool, output string, w io.Writer) int {
	o, err := cr.healthOptions(canary)
	if err != nil {
		fmt.Fprintf(w, "health: %v\n", err)
		return ExitFailed
	}
	rep := health.Check(ctx, dial, o)
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		fmt.Fprintln(w)
		rep.WriteTable(w)
	}
	if !rep.Healthy {
		return ExitFailed
	}
	return ExitOK
}
