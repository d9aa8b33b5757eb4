package health

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the whole health answer: `drover health` prints it and exits 0 only when Healthy.
type Report struct {
	Healthy  bool     `json:"healthy"`
	Quorum   Quorum   `json:"coordinators"`
	Brokers  Brokers  `json:"brokers"`
	Canary   *Canary  `json:"canary,omitempty"`
	Problems []string `json:"problems,omitempty"`
	Elapsed  string   `json:"elapsed"`
}

// Options selects what Check looks at.
type Options struct {
	Coordinators []Target
	Brokers      []Target // Addr = the broker's advertised listener host:port
	Canary       bool
}

// Check runs every check; the canary only runs when the cluster already looks healthy, so a broken
// cluster reports its real problem instead of a canary timeout.
func Check(ctx context.Context, dial Dialer, o Options) Report {
	start := time.Now()
	r := Report{}
	if len(o.Coordinators) > 0 {
		r.Quorum = CheckQuorum(ctx, dial, o.Coordinators)
		r.Problems = append(r.Problems, r.Quorum.Problems...)
	}
	if len(o.Brokers) > 0 && len(r.Problems) == 0 {
		var seeds []string
		for _, b := range o.Brokers {
			seeds = append(seeds, b.Addr)
		}
		cl, err := Client(dial, seeds)
		if err != nil {
			r.Problems = append(r.Problems, "kafka client: "+err.Error())
		} else {
			r.Brokers = CheckBrokers(ctx, cl, o.Brokers)
			cl.Close()
			r.Problems = append(r.Problems, r.Brokers.Problems...)
		}
		if o.Canary && len(r.Problems) == 0 {
			c := RunCanary(ctx, dial, seeds, len(o.Brokers))
			r.Canary = &c
			if c.Err != "" {
				r.Problems = append(r.Problems, "canary: "+c.Err)
			}
		}
	} else if len(o.Brokers) > 0 {
		r.Problems = append(r.Problems, "brokers not checked: the coordinators have no quorum")
	}
	r.Healthy = len(r.Problems) == 0
	r.Elapsed = time.Since(start).Round(time.Millisecond).String()
	return r
}

// WriteTable prints the report for people.
func (r Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tROLE\tID\tADDRESS\tSTATE")
	for _, m := range r.Quorum.Members {
		st := m.Mode
		if m.Err != "" {
			st = "DOWN: " + m.Err
		} else if m.Mode == "leader" {
			st = fmt.Sprintf("leader (%d synced followers)", m.SyncedFollowers)
		}
		fmt.Fprintf(tw, "%s\tcoordinator\t%d\t%s\t%s\n", m.Host, m.ID, m.Addr, st)
	}
	for _, b := range r.Brokers.Brokers {
		st := "registered, reachable"
		if b.Err != "" {
			st = "DOWN: " + b.Err
		}
		if b.Controller {
			st += ", controller"
		}
		addr := b.Advertised
		if addr == "" {
			addr = b.Addr
		}
		fmt.Fprintf(tw, "%s\tbroker\t%d\t%s\t%s\n", b.Host, b.ID, addr, st)
	}
	tw.Flush()
	if len(r.Brokers.Brokers) > 0 {
		fmt.Fprintf(w, "partitions: %d, offline: %d, under-replicated: %d\n", r.Brokers.Partitions, r.Brokers.Offline, r.Brokers.UnderReplicated)
	}
	if r.Canary != nil {
		if r.Canary.Err == "" {
			fmt.Fprintf(w, "canary: produced %d (acks=all), consumed %d, in %s\n", r.Canary.Produced, r.Canary.Consumed, r.Canary.Latency)
		} else {
			fmt.Fprintf(w, "canary: FAILED after %s: %s\n", r.Canary.Latency, r.Canary.Err)
		}
	}
	if r.Healthy {
		fmt.Fprintf(w, "HEALTHY (checked in %s)\n", r.Elapsed)
	} else {
		fmt.Fprintf(w, "UNHEALTHY (checked in %s):\n  - %s\n", r.Elapsed, strings.Join(r.Problems, "\n  - "))
	}
}
