package tasks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"time"

	"github.com/drover/drover/agent/protocol"
)

// runProbe polls until the target answers or the deadline passes. Check mode skips it: what it
// waits for is usually started by tasks that check mode did not run.
func runProbe(ctx context.Context, env *Env, t protocol.Task) (Result, error) {
	var p protocol.ProbeParams
	if err := decode(t, &p); err != nil {
		return Result{}, err
	}
	n := 0
	for _, set := range []bool{p.TCP != "", p.HTTP != "", len(p.Command) > 0} {
		if set {
			n++
		}
	}
	if n != 1 {
		return Result{}, errors.New("probe needs exactly one of tcp, http, command")
	}
	timeout, err := durationOr(p.Timeout, 60*time.Second)
	if err != nil {
		return Result{}, err
	}
	interval, err := durationOr(p.Interval, 200*time.Millisecond)
	if err != nil {
		return Result{}, err
	}
	if env.Check {
		return Result{Skipped: true, Msg: "probe skipped in check mode"}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	try := func(ctx context.Context) error {
		actx, acancel := context.WithTimeout(ctx, max(interval*5, 2*time.Second))
		defer acancel()
		switch {
		case p.TCP != "":
			var d net.Dialer
			c, err := d.DialContext(actx, "tcp", p.TCP)
			if err != nil {
				return err
			}
			return c.Close()
		case p.HTTP != "":
			req, err := http.NewRequestWithContext(actx, http.MethodGet, p.HTTP, nil)
			if err != nil {
				return err
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("HTTP %s", resp.Status)
			}
			return nil
		default:
			out, err := exec.CommandContext(actx, p.Command[0], p.Command[1:]...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%w: %s", err, truncate(string(out), 200))
			}
			return nil
		}
	}
	start := time.Now()
	attempts := 0
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		attempts++
		err := try(ctx)
		if err == nil {
			return Result{Msg: fmt.Sprintf("ready after %s (%d attempts)", time.Since(start).Round(time.Millisecond), attempts)}, nil
		}
		select {
		case <-ctx.Done():
			return Result{}, fmt.Errorf("not ready after %s (%d attempts): last error: %w", time.Since(start).Round(time.Millisecond), attempts, err)
		case <-tick.C:
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
