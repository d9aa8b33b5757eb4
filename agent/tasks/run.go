// Package tasks implements the agent's idempotent task kinds, one file per kind.
//
// Every kind first computes what would change (the same in check mode and apply mode), reports it,
// and only applies it when not in check mode. Writes are atomic (temp file in the same directory,
// fsync, rename), so killing the agent at any point leaves either the old or the new content.
package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/drover/drover/agent/protocol"
)

// Result is what a task kind reports.
type Result struct {
	Changed bool
	Skipped bool
	Diff    string
	Msg     string
	Facts   *protocol.Facts
}

// kindFunc runs one task. params is the raw JSON of the kind's parameter struct.
type kindFunc func(ctx context.Context, env *Env, t protocol.Task) (Result, error)

var kinds = map[string]kindFunc{
	protocol.KindDirectory: runDirectory,
	protocol.KindFile:      runFile,
	protocol.KindUser:      runUser,
	protocol.KindGroup:     runGroup,
	protocol.KindArtifact:  runArtifact,
	protocol.KindUnit:      runUnit,
	protocol.KindService:   runService,
	protocol.KindProbe:     runProbe,
	protocol.KindFacts:     runFacts,
	protocol.KindIdentity:  runIdentity,
}

// Env is the state of one agent run shared by its tasks.
type Env struct {
	Root  string // rewrite node paths under Root (tests)
	Check bool
	Diff  bool
	Owned []string
	// Exec runs a command and returns its combined output. Tests replace it.
	Exec func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Systemd opens the systemd connection on first use. Tests replace it.
	Systemd func(ctx context.Context) (Systemd, error)
	// StoreDir is the node path of the artifact store.
	StoreDir string

	changed      map[string]bool // task id -> changed in this run
	seen         map[string]bool // task ids run so far
	unitsChanged bool            // a unit file changed since the last daemon-reload
	sd           Systemd
}

// NewEnv returns an Env for req with the real command runner and systemd connection.
func NewEnv(req protocol.Request) *Env {
	return &Env{
		Root:     req.Root,
		Check:    req.Check,
		Diff:     req.Diff,
		Owned:    req.Owned,
		Exec:     execCommand,
		Systemd:  dialSystemd,
		StoreDir: protocol.StoreDir,
	}
}

func execCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// Path validates a node path (absolute, clean) and maps it under Root.
func (e *Env) Path(p string) (string, error) {
	if p == "" || !filepath.IsAbs(p) {
		return "", fmt.Errorf("path %q is not absolute", p)
	}
	if filepath.Clean(p) != p {
		return "", fmt.Errorf("path %q is not clean", p)
	}
	if e.Root == "" {
		return p, nil
	}
	return filepath.Join(e.Root, p), nil
}

// writable maps p like Path and refuses it unless the plan owns it.
func (e *Env) writable(t protocol.Task, p string) (string, error) {
	real, err := e.Path(p)
	if err != nil {
		return "", err
	}
	if !protocol.Owns(e.Owned, p) {
		return "", fmt.Errorf("task %q writes %s outside the owned paths %v", t.ID, p, e.Owned)
	}
	return real, nil
}

// Run executes req's tasks in order, calling emit for every event, and returns the summary.
// A run stops at the first failed task: later tasks usually depend on earlier ones.
func Run(ctx context.Context, req protocol.Request, env *Env, emit func(protocol.Event) error) protocol.Summary {
	sum := protocol.Summary{Check: req.Check}
	env.changed = map[string]bool{}
	env.seen = map[string]bool{}
	defer func() {
		if env.sd != nil {
			env.sd.Close()
		}
	}()
	if req.Version != protocol.ProtocolVersion {
		sum.Failed++
		_ = emit(protocol.Event{Status: protocol.StatusFailed, Err: fmt.Sprintf("protocol version %d, agent speaks %d", req.Version, protocol.ProtocolVersion)})
		return sum
	}
	for _, t := range req.Tasks {
		if err := ctx.Err(); err != nil {
			sum.Failed++
			_ = emit(protocol.Event{Task: t.ID, Kind: t.Kind, Status: protocol.StatusFailed, Err: "canceled before start: " + context.Cause(ctx).Error()})
			return sum
		}
		start := time.Now()
		if err := emit(protocol.Event{Task: t.ID, Kind: t.Kind, Status: protocol.StatusStarted}); err != nil {
			return sum // controller gone; stop between tasks
		}
		res, err := runOne(ctx, env, t)
		ev := protocol.Event{Task: t.ID, Kind: t.Kind, Msg: res.Msg, Facts: res.Facts, Elapsed: time.Since(start)}
		if req.Diff || err != nil {
			ev.Diff = res.Diff
		}
		env.seen[t.ID] = true
		switch {
		case err != nil:
			ev.Status, ev.Err = protocol.StatusFailed, err.Error()
			sum.Failed++
		case res.Skipped:
			ev.Status = protocol.StatusSkipped
			sum.Skipped++
		case res.Changed:
			ev.Status = protocol.StatusChanged
			env.changed[t.ID] = true
			sum.OK++
			sum.Changed++
		default:
			ev.Status = protocol.StatusOK
			sum.OK++
		}
		if emit(ev) != nil || err != nil {
			return sum
		}
	}
	return sum
}

func runOne(ctx context.Context, env *Env, t protocol.Task) (res Result, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("task %s panicked: %v", t.ID, r)
		}
	}()
	if t.ID == "" {
		return Result{}, errors.New("task without id")
	}
	if env.seen[t.ID] {
		return Result{}, fmt.Errorf("duplicate task id %q", t.ID)
	}
	for _, dep := range t.OnlyIfChanged {
		if !env.seen[dep] {
			return Result{}, fmt.Errorf("only_if_changed names %q, which is not an earlier task", dep)
		}
	}
	fn, ok := kinds[t.Kind]
	if !ok {
		return Result{}, fmt.Errorf("unknown task kind %q", t.Kind)
	}
	if len(t.OnlyIfChanged) > 0 && t.Kind != protocol.KindService && !env.anyChanged(t.OnlyIfChanged) {
		return Result{Skipped: true, Msg: "no trigger changed"}, nil
	}
	return fn(ctx, env, t)
}

func (e *Env) anyChanged(ids []string) bool {
	for _, id := range ids {
		if e.changed[id] {
			return true
		}
	}
	return false
}

func decode(t protocol.Task, v any) error {
	if len(t.Params) == 0 {
		return fmt.Errorf("task %q: no params", t.ID)
	}
	dec := json.NewDecoder(strings.NewReader(string(t.Params)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("task %q params: %w", t.ID, err)
	}
	return nil
}

func parseMode(s string, def os.FileMode) (os.FileMode, error) {
	if s == "" {
		return def, nil
	}
	var m uint32
	if _, err := fmt.Sscanf(s, "%o", &m); err != nil || m > 07777 {
		return 0, fmt.Errorf("bad mode %q", s)
	}
	return os.FileMode(m&0777) | modeBits(m), nil
}

func modeBits(m uint32) os.FileMode {
	var f os.FileMode
	if m&04000 != 0 {
		f |= os.ModeSetuid
	}
	if m&02000 != 0 {
		f |= os.ModeSetgid
	}
	if m&01000 != 0 {
		f |= os.ModeSticky
	}
	return f
}

func fmtMode(m os.FileMode) string {
	v := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		v |= 04000
	}
	if m&os.ModeSetgid != 0 {
		v |= 02000
	}
	if m&os.ModeSticky != 0 {
		v |= 01000
	}
	return fmt.Sprintf("%04o", v)
}

func durationOr(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q: %w", s, err)
	}
	return d, nil
}
