package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/drover/drover/provisioner/display"
	"github.com/drover/drover/provisioner/engine"
	"github.com/drover/drover/provisioner/plan"
	"github.com/drover/drover/provisioner/rolling"
)

func init() {
	Register(&Command{Name: "restart", Summary: "rolling restart, one node at a time, health-gated", Run: runRestart})
}

func runRestart(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("restart", flag.ContinueOnError)
	var f runFlags
	f.register(fs)
	roll := fs.Bool("rolling", false, "restart one node at a time (required: drover never restarts a whole cluster at once)")
	group := fs.String("group", "", "only this role: coordinator or broker")
	canary := fs.Bool("canary", false, "run an acks=all producer and a consumer through the roll and report losses")
	force := fs.Bool("force", false, "roll even when the cluster is unhealthy at the start")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: drover restart -i INVENTORY --rolling [--group coordinator|broker] [--limit P] [--canary]\n\n"+
			"Refuses to start on an unhealthy cluster (--force overrides). Coordinators first, followers\n"+
			"before the leader; then brokers, the controller last. After each node it waits until the node\n"+
			"is back in quorum / registered and no partition is under-replicated; it stops at the first\n"+
			"node that does not come back healthy.\n\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if !*roll {
		fmt.Fprintf(stderr, "drover restart: pass --rolling (restarting every node at once would take the cluster down)\n")
		return ExitFailed
	}
	if *group != "" && *group != plan.RoleCoordinator && *group != plan.RoleBroker {
		fmt.Fprintf(stderr, "drover restart: --group %q: want coordinator or broker\n", *group)
		return ExitFailed
	}
	cr, err := loadCluster(&f.HostFlags, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "drover restart: %v\n", err)
		return ExitFailed
	}
	defer cr.close()
	var nodes []rolling.Node
	var hosts []*engine.Host
	for _, h := range cr.hosts {
		role := cr.roles[h.Name]
		if *group != "" && role != *group {
			continue
		}
		hosts = append(hosts, h)
		nodes = append(nodes, rolling.Node{Host: h.Name, Role: role, ID: cr.nodes[h.Name].ID})
	}
	if len(nodes) == 0 {
		fmt.Fprintf(stderr, "drover restart: no hosts match\n")
		return ExitFailed
	}
	ctx, stop := engine.WithInterrupt(ctx, stderr)
	defer stop()
	agentPath, err := artifactPath(f.binDir, "drover-agent")
	if err != nil {
		fmt.Fprintf(stderr, "drover restart: %v\n", err)
		return ExitFailed
	}
	d, err := display.New(display.Options{Mode: f.progress, Out: stderr, Err: stderr})
	if err != nil {
		fmt.Fprintf(stderr, "drover restart: %v\n", err)
		return ExitFailed
	}
	r := &engine.Runner{Forks: f.Forks, Sink: d}
	res := r.Run(ctx, hosts, engine.Connect{Dial: cr.engineDial}, &engine.EnsureAgent{Path: agentPath})
	if code := res.ExitCode(); code != ExitOK {
		d.Finish(res)
		return code
	}
	ho, err := cr.healthOptions(false)
	if err != nil {
		fmt.Fprintf(stderr, "drover restart: %v\n", err)
		return ExitFailed
	}
	rr := rolling.Roll(ctx, rolling.Options{Cluster: ho, Nodes: nodes, Dial: cr.dialer(f.direct), Force: *force, Canary: *canary,
		Restart: func(ctx context.Context, n rolling.Node) error { return restartService(ctx, cr.byName[n.Host], n.Role) },
		Log:     func(host, msg string) { fmt.Fprintf(stderr, "%s: %s\n", host, msg) }})
	if f.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rr)
	} else {
		tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HOST\tROLE\tRESTART\tHEALTHY AFTER\tRESULT")
		for _, s := range rr.Steps {
			res := "ok"
			if s.Err != "" {
				res = "FAILED: " + s.Err
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Host, s.Role, s.Restart, s.Healthy, res)
		}
		tw.Flush()
		if c := rr.Canary; c != nil {
			fmt.Fprintf(stdout, "canary: sent %d, acked %d, consumed %d, lost %d, duplicated %d, longest stall %s\n",
				c.Sent, c.Acked, c.Consumed, c.Lost, c.Duplicated, c.LongestStall)
			if c.Err != "" {
				fmt.Fprintf(stdout, "canary producer error: %s\n", c.Err)
			}
		}
		if rr.Err != "" {
			fmt.Fprintf(stdout, "roll FAILED after %s: %s\n", rr.Elapsed, rr.Err)
		} else {
			fmt.Fprintf(stdout, "roll complete: %d node(s) in %s\n", len(rr.Steps), rr.Elapsed)
		}
	}
	if rr.Err != "" {
		return ExitFailed
	}
	return ExitOK
}
