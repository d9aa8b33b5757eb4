package engine

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/drover/drover/agent/protocol"
)

// Host is one target of a run. The caller fills Name, Conn (or lets a connect phase set it), Sudo
// and Data; the engine fills the rest.
type Host struct {
	Name string
	Conn Conn
	// Sudo wraps privileged commands (agent apply/put, agent bootstrap) in `sudo -n`: set it when
	// the SSH user is not root.
	Sudo bool
	// Data is free for the caller (inventory host, role, plan ...).
	Data any
	// Facts is set by the Facts phase.
	Facts *protocol.Facts

	mu      sync.Mutex
	stats   Stats
	err     *HostError
	step    string
	stepAt  time.Time
	changed map[string]bool           // task ids changed in any apply of this run
	results map[string]protocol.Event // last final event per task id
	have    map[string]bool           // store hashes ensure-agent saw, for push-artifacts
	run     *runState
}

// Stats is a host's line of the recap. OK includes Changed, as Ansible counts.
type Stats struct {
	OK, Changed, Unreachable, Failed, Skipped int
	Duration                                  time.Duration
}

// Stats returns a copy of the host's counters.
func (h *Host) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stats
}

// Err returns the error that stopped this host, or nil.
func (h *Host) Err() *HostError {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Failed reports whether the host stopped on an error (failed or unreachable).
func (h *Host) Failed() bool { return h.Err() != nil }

// Changed reports whether any of the task ids changed on this host during this run.
func (h *Host) Changed(ids ...string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		if h.changed[id] {
			return true
		}
	}
	return false
}

// Result returns the final agent event of task id in this run.
func (h *Host) Result(id string) (protocol.Event, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ev, ok := h.results[id]
	return ev, ok
}

// Step announces the step a phase is at on this host (tty shows it; the log records it).
func (h *Host) Step(name string) {
	h.mu.Lock()
	h.step, h.stepAt = name, time.Now()
	h.mu.Unlock()
	h.emit(Event{Type: EventStep, Step: name})
}

// Logf writes a trace line to the run log.
func (h *Host) Logf(format string, args ...any) {
	h.emit(Event{Type: EventLog, Msg: fmt.Sprintf(format, args...)})
}

// Report records the outcome of a step that is not an agent task (upload, health check ...):
// status is ok, changed, skipped or failed. A phase that reports nothing counts as one ok step.
func (h *Host) Report(step string, status protocol.Status, msg string) {
	h.Task(protocol.Event{Task: step, Status: status, Msg: msg})
}

// Task records an agent event and forwards it to the display.
func (h *Host) Task(ev protocol.Event) {
	h.mu.Lock()
	if ev.Status.Final() {
		if h.results == nil {
			h.results = map[string]protocol.Event{}
			h.changed = map[string]bool{}
		}
		h.results[ev.Task] = ev
		if h.run != nil {
			h.run.reported++
		}
		switch ev.Status {
		case protocol.StatusOK:
			h.stats.OK++
		case protocol.StatusChanged:
			h.stats.OK++
			h.stats.Changed++
			h.changed[ev.Task] = true
		case protocol.StatusFailed:
			h.stats.Failed++
			if h.run != nil {
				h.run.failedReported = true
			}
		case protocol.StatusSkipped:
			h.stats.Skipped++
		}
	} else if ev.Status == protocol.StatusStarted {
		h.step, h.stepAt = ev.Task, time.Now()
	}
	h.mu.Unlock()
	e := ev
	h.emit(Event{Type: EventTask, Step: ev.Task, Task: &e})
}

func (h *Host) emit(ev Event) {
	h.mu.Lock()
	rs := h.run
	h.mu.Unlock()
	if rs == nil || rs.sink == nil {
		return
	}
	ev.Host = h.Name
	ev.Phase = rs.phase
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	rs.sink.Handle(ev)
}

// CurrentStep returns the step in flight and when it started (tty display).
func (h *Host) CurrentStep() (string, time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.step, h.stepAt
}

// runState is the per-phase bookkeeping of a host.
type runState struct {
	sink           Sink
	phase          string
	reported       int
	failedReported bool
	check, diff    bool
}

// Check reports whether the run is in check mode (phases outside this package use it).
func (h *Host) Check() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.run != nil && h.run.check
}

// root is the node root of a test connection ("" on real hosts).
func (h *Host) root() string {
	if r, ok := h.Conn.(Rooted); ok {
		return r.NodeRoot()
	}
	return ""
}

// NodePath maps a node path under the test root, if any.
func (h *Host) NodePath(p string) string {
	if r := h.root(); r != "" {
		return path.Join(r, p)
	}
	return p
}

// Privileged wraps cmd for root: `sudo -n sh -c '...'` when Sudo is set.
func (h *Host) Privileged(cmd string) string {
	if !h.Sudo {
		return cmd
	}
	return "sudo -n sh -c " + ShellQuote(cmd)
}

// Agent returns the command line of the node's agent with args (quoted), not privileged.
func (h *Host) Agent(args ...string) string {
	parts := []string{ShellQuote(h.NodePath(protocol.AgentPath))}
	if r := h.root(); r != "" {
		parts = append(parts, "--root", ShellQuote(r))
	}
	for _, a := range args {
		parts = append(parts, ShellQuote(a))
	}
	return strings.Join(parts, " ")
}

// Exec runs cmd on the host, returns its stdout and classifies failure: *CmdError when it ran and
// exited non-zero, an ErrUnreachable error when the transport failed, the context's cause when
// canceled. The command and its outcome go to the run log.
func (h *Host) Exec(ctx context.Context, cmd string, stdin io.Reader) ([]byte, error) {
	var out strings.Builder
	err := h.Stream(ctx, cmd, stdin, &out)
	return []byte(out.String()), err
}

// Stream is Exec with stdout going to w.
func (h *Host) Stream(ctx context.Context, cmd string, stdin io.Reader, w io.Writer) error {
	if h.Conn == nil {
		return Unreachable(fmt.Errorf("%s: not connected", h.Name))
	}
	start := time.Now()
	errb := &tailBuffer{max: 4096}
	h.Logf("run: %s", cmd)
	err := classify(ctx, cmd, h.Conn.Run(ctx, cmd, stdin, w, errb), errb.String())
	if err != nil {
		h.Logf("run failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
	} else {
		h.Logf("run ok in %s", time.Since(start).Round(time.Millisecond))
	}
	return err
}
