package tasks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/drover/drover/agent/protocol"
)

// runService converges a unit's enablement and run state through systemd's D-Bus API.
//
// A daemon-reload runs first when a unit file changed earlier in this run. Jobs are waited for:
// with Type=notify a start job finishes only once the service reported READY=1, so "done" means
// ready, not merely forked. The ActiveState after the job is reported and must be "active" for
// started/restarted. Handler semantics: with OnlyIfChanged, the restart happens only when one of
// the named tasks changed; a service that was just started is not restarted again.
func runService(ctx context.Context, env *Env, t protocol.Task) (Result, error) {
	var p protocol.ServiceParams
	if err := decode(t, &p); err != nil {
		return Result{}, err
	}
	if !unitNameRE.MatchString(p.Name) {
		return Result{}, fmt.Errorf("bad unit name %q", p.Name)
	}
	switch p.State {
	case "", protocol.StateStarted, protocol.StateRestarted, protocol.StateStopped:
	default:
		return Result{}, fmt.Errorf("bad service state %q", p.State)
	}
	timeout, err := durationOr(p.Timeout, 2*time.Minute)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	if env.sd == nil {
		if env.sd, err = env.Systemd(ctx); err != nil {
			return Result{}, err
		}
	}
	sd := env.sd
	var did []string
	changed := false
	if env.unitsChanged {
		did = append(did, "daemon-reload")
		if !env.Check {
			if err := sd.Reload(ctx); err != nil {
				return Result{}, fmt.Errorf("daemon-reload: %w", err)
			}
			env.unitsChanged = false
		}
	}
	active, file, err := sd.State(ctx, p.Name)
	if err != nil {
		return Result{}, err
	}
	missing := file == "not-found"
	if missing && !env.Check {
		return Result{}, fmt.Errorf("unit %s not found", p.Name)
	}
	would := func(s string) {
		changed = true
		if env.Check {
			s = "would " + s
		}
		did = append(did, s)
	}

	if p.Enabled != nil {
		switch {
		case *p.Enabled && (missing || file != "enabled" && file != "static" && file != "enabled-runtime"):
			would("enable")
			if !env.Check {
				if _, err := sd.Enable(ctx, p.Name); err != nil {
					return Result{}, err
				}
			}
		case !*p.Enabled && file == "enabled":
			would("disable")
			if !env.Check {
				if _, err := sd.Disable(ctx, p.Name); err != nil {
					return Result{}, err
				}
			}
		}
	}

	running := active == "active" || active == "activating" || active == "reloading"
	gated := len(t.OnlyIfChanged) > 0
	trigger := gated && env.anyChanged(t.OnlyIfChanged)
	job := ""
	switch p.State {
	case protocol.StateStarted:
		if !running {
			job = "start"
		} else if trigger {
			job = "restart"
		}
	case protocol.StateRestarted:
		if !gated || trigger {
			job = "restart"
		} else if !running {
			job = "start"
		}
	case protocol.StateStopped:
		if running {
			job = "stop"
		}
	case "":
		if trigger && running {
			job = "restart"
		}
	}
	if job != "" {
		why := ""
		if job == "restart" && trigger {
			why = " (" + strings.Join(changedOf(env, t.OnlyIfChanged), ",") + " changed)"
		}
		would(job + why)
		if !env.Check {
			r, err := sd.Job(ctx, job, p.Name)
			if err != nil {
				return Result{}, err
			}
			if r != "done" {
				st, _, _ := sd.State(ctx, p.Name)
				return Result{}, fmt.Errorf("%s %s: job %s, ActiveState=%s (see journalctl -u %s)", job, p.Name, r, st, p.Name)
			}
		}
	}
	if !env.Check {
		if active, _, err = sd.State(ctx, p.Name); err != nil {
			return Result{}, err
		}
		if (p.State == protocol.StateStarted || p.State == protocol.StateRestarted) && active != "active" {
			return Result{}, fmt.Errorf("%s is %s after %s (see journalctl -u %s)", p.Name, active, orNone(job), p.Name)
		}
	}
	msg := "ActiveState=" + active
	if missing {
		msg = "unit not loaded yet"
	}
	if len(did) > 0 {
		msg = strings.Join(did, ", ") + "; " + msg
	}
	res := Result{Changed: changed, Msg: msg}
	if changed {
		res.Diff = "~ " + p.Name + ": " + strings.Join(did, ", ") + "\n"
	}
	return res, nil
}

func changedOf(env *Env, ids []string) []string {
	var out []string
	for _, id := range ids {
		if env.changed[id] {
			out = append(out, id)
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "no job"
	}
	return s
}
