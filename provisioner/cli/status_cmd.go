package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/drover/drover/provisioner/plan"
)

func init() {
	Register(&Command{Name: "status", Summary: "per host: role, id, unit state, binary version, uptime", Run: runStatus})
}

type hostStatus struct {
	Host    string `json:"host"`
	Role    string `json:"role"`
	ID      int    `json:"id"`
	State   string `json:"state"`
	Version string `json:"version"`
	Uptime  string `json:"uptime"`
	Err     string `json:"error,omitempty"`
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	var f runFlags
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: drover status -i INVENTORY [--limit P] [--output table|json]\n\n")
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, stderr); !ok {
		return code
	}
	cr, err := loadCluster(&f.HostFlags, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "drover status: %v\n", err)
		return ExitFailed
	}
	defer cr.close()
	out := make([]hostStatus, len(cr.hosts))
	code := ExitOK
	cr.pool.ForEach(ctx, len(cr.hosts), func(ctx context.Context, i int) {
		h := cr.hosts[i]
		role := cr.roles[h.Name]
		svc := plan.Services[role]
		s := hostStatus{Host: h.Name, Role: role, ID: cr.nodes[h.Name].ID}
		defer func() { out[i] = s }()
		c, err := cr.connect(ctx, h.Name)
		if err != nil {
			s.Err, s.State = err.Error(), "unreachable"
			return
		}
		// one round trip: unit state, since when (monotonic, compared with the node's uptime), version
		cmd := fmt.Sprintf(`systemctl show --timestamp=unix -p ActiveState -p SubState -p ActiveEnterTimestamp %s; echo "now=$(date +%%s)"; echo "version=$(%s --version 2>/dev/null)"`, svc.Unit, svc.Binary)
		b, err := c.Output(ctx, cmd)
		if err != nil {
			s.Err, s.State = err.Error(), "unknown"
			return
		}
		kv := map[string]string{}
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				kv[k] = strings.TrimSpace(v)
			}
		}
		s.State = kv["ActiveState"] + "/" + kv["SubState"]
		s.Version = strings.TrimSpace(strings.TrimPrefix(kv["version"], svc.Binary[strings.LastIndex(svc.Binary, "/")+1:]))
		if s.Version == "" {
			s.Version = "not installed"
		}
		// both clocks are the node's, so controller clock skew does not matter
		var now, since int64
		fmt.Sscanf(kv["now"], "%d", &now)
		fmt.Sscanf(strings.TrimPrefix(kv["ActiveEnterTimestamp"], "@"), "%d", &since)
		if kv["ActiveState"] == "active" && since > 0 && now >= since {
			s.Uptime = (time.Duration(now-since) * time.Second).String()
		}
	})
	for _, s := range out {
		switch {
		case s.State == "unreachable":
			code = ExitUnreachable
		case s.Err != "" && code == ExitOK:
			code = ExitFailed
		}
	}
	if f.output == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return code
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tROLE\tID\tSTATE\tVERSION\tUPTIME")
	for _, s := range out {
		st := s.State
		if s.Err != "" {
			st += ": " + oneLine(fmt.Errorf("%s", s.Err))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", s.Host, s.Role, s.ID, st, s.Version, s.Uptime)
	}
	tw.Flush()
	return code
}
