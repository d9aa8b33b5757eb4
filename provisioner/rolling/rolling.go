// Package rolling restarts a cluster one node at a time without losing a message: it refuses to
// start on an unhealthy cluster, restarts coordinator followers before the leader and brokers before
// the controller, waits after each node until the whole cluster is healthy again (polling, no fixed
// sleeps), and stops at the first node that does not come back.
package rolling

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/drover/drover/provisioner/health"
)

// Node is one host to restart.
type Node struct {
	Host string
	Role string // "coordinator" or "broker"
	ID   int
}

// Options configures a roll.
type Options struct {
	Cluster health.Options // every member, for the health gate (Canary is ignored)
	Nodes   []Node         // the nodes to restart, any order
	Dial    health.Dialer
	// Restart stops and starts one node's service and returns once systemd reports it started
	// (Type=notify: the service said READY).
	Restart func(ctx context.Context, n Node) error
	Force   bool          // roll even when the cluster is unhealthy at the start
	Canary  bool          // run an acks=all producer and a consumer through the roll
	Settle  time.Duration // how long one node may take to be healthy again (default 2 min)
	Log     func(host, msg string)
}

// Step is one restarted node.
type Step struct {
	Host    string `json:"host"`
	Role    string `json:"role"`
	Restart string `json:"restart"` // time systemd took to restart it
	Healthy string `json:"healthy"` // time until the cluster was healthy again
	Err     string `json:"error,omitempty"`
}

// Result is the whole roll.
type Result struct {
	Steps   []Step        `json:"steps"`
	Canary  *CanaryResult `json:"canary,omitempty"`
	Elapsed string        `json:"elapsed"`
	Err     string        `json:"error,omitempty"`
}

// Roll runs the rolling restart.
func Roll(ctx context.Context, o Options) Result {
	start := time.Now()
	var res Result
	logf := func(host, f string, a ...any) {
		if o.Log != nil {
			o.Log(host, fmt.Sprintf(f, a...))
		}
	}
	if o.Settle == 0 {
		o.Settle = 2 * time.Minute
	}
	gate := o.Cluster
	gate.Canary = false
	finish := func(err error) Result {
		if err != nil {
			res.Err = err.Error()
		}
		res.Elapsed = time.Since(start).Round(time.Millisecond).String()
		return res
	}
	rep := health.Check(ctx, o.Dial, gate)
	if !rep.Healthy && !o.Force {
		return finish(fmt.Errorf("refusing to roll an unhealthy cluster (pass --force to override): %s", strings.Join(rep.Problems, "; ")))
	}
	var canary *Canary
	if o.Canary {
		var seeds []string
		for _, b := range o.Cluster.Brokers {
			seeds = append(seeds, b.Addr)
		}
		c, err := StartCanary(ctx, o.Dial, seeds, len(o.Cluster.Brokers))
		if err != nil {
			return finish(fmt.Errorf("start canary: %w", err))
		}
		canary = c
	}
	stopCanary := func() {
		if canary != nil {
			r := canary.Stop(context.Background())
			res.Canary = &r
			canary = nil
		}
	}
	pending := append([]Node(nil), o.Nodes...)
	for _, role := range []string{"coordinator", "broker"} {
		for {
			next, ok := pick(pending, role, rep)
			if !ok {
				break
			}
			pending = remove(pending, next)
			step := Step{Host: next.Host, Role: next.Role}
			logf(next.Host, "restarting %s", next.Role)
			t0 := time.Now()
			err := o.Restart(ctx, next)
			step.Restart = time.Since(t0).Round(time.Millisecond).String()
			if err == nil {
				logf(next.Host, "restarted in %s; waiting for the cluster to be healthy", step.Restart)
				rep, err = waitHealthy(ctx, o.Dial, gate, o.Settle)
			}
			step.Healthy = time.Since(t0).Round(time.Millisecond).String()
			if err != nil {
				step.Err = err.Error()
				res.Steps = append(res.Steps, step)
				stopCanary()
				return finish(fmt.Errorf("%s did not come back healthy; roll stopped: %w", next.Host, err))
			}
			logf(next.Host, "healthy again after %s", step.Healthy)
			res.Steps = append(res.Steps, step)
		}
	}
	stopCanary()
	if res.Canary != nil && (res.Canary.Lost > 0 || res.Canary.Duplicated > 0) {
		return finish(fmt.Errorf("canary lost %d and duplicated %d records", res.Canary.Lost, res.Canary.Duplicated))
	}
	return finish(nil)
}

// pick returns the next node of role to restart: anything but the coordinator leader or the
// broker controller while others remain, so leadership moves once, at the end.
func pick(pending []Node, role string, rep health.Report) (Node, bool) {
	var last *Node
	for i, n := range pending {
		if n.Role != role {
			continue
		}
		if isLeader(n, rep) {
			last = &pending[i]
			continue
		}
		return n, true
	}
	if last != nil {
		return *last, true
	}
	return Node{}, false
}

func isLeader(n Node, rep health.Report) bool {
	if n.Role == "coordinator" {
		return rep.Quorum.Leader == n.Host
	}
	return rep.Brokers.Controller >= 0 && int(rep.Brokers.Controller) == n.ID
}

func remove(ns []Node, x Node) []Node {
	out := ns[:0:0]
	for _, n := range ns {
		if n != x {
			out = append(out, n)
		}
	}
	return out
}

// waitHealthy polls the health gate until it passes or settle runs out.
func waitHealthy(ctx context.Context, dial health.Dialer, gate health.Options, settle time.Duration) (health.Report, error) {
	deadline := time.Now().Add(settle)
	for {
		rep := health.Check(ctx, dial, gate)
		if rep.Healthy {
			return rep, nil
		}
		if time.Now().After(deadline) {
			return rep, fmt.Errorf("still unhealthy after %s: %s", settle, strings.Join(rep.Problems, "; "))
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
