package display

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/drover/drover/provisioner/engine"
)

// RunLog is an engine.Sink writing every event, trace lines included, to a file.
type RunLog struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	path string
}

// RunLogDir is $XDG_STATE_HOME/drover/runs, else ~/.local/state/drover/runs.
func RunLogDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "drover", "runs")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "drover", "runs")
	}
	return filepath.Join(os.TempDir(), "drover", "runs")
}

// OpenRunLog creates <RunLogDir>/<timestamp>-<action>.log, falling back to the temp dir.
func OpenRunLog(action string) (*RunLog, error) {
	name := time.Now().Format("20060102-150405.000") + "-" + action + ".log"
	var f *os.File
	var err error
	for _, dir := range []string{RunLogDir(), filepath.Join(os.TempDir(), "drover-runs")} {
		if err = os.MkdirAll(dir, 0700); err != nil {
			continue
		}
		if f, err = os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0600); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open run log: %w", err)
	}
	return &RunLog{f: f, w: bufio.NewWriterSize(f, 64<<10), path: f.Name()}, nil
}

// Path of the log file.
func (l *RunLog) Path() string { return l.path }

// Handle implements engine.Sink.
func (l *RunLog) Handle(ev engine.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	b.WriteString(ev.Time.Format("15:04:05.000000"))
	fmt.Fprintf(&b, " %-11s", ev.Type)
	if ev.Host != "" {
		b.WriteString(" host=" + ev.Host)
	}
	if ev.Phase != "" {
		fmt.Fprintf(&b, " phase=%q", ev.Phase)
	}
	if ev.Step != "" {
		fmt.Fprintf(&b, " step=%q", ev.Step)
	}
	if t := ev.Task; t != nil {
		fmt.Fprintf(&b, " status=%s", t.Status)
		if t.Kind != "" {
			b.WriteString(" kind=" + t.Kind)
		}
		if t.Elapsed > 0 {
			fmt.Fprintf(&b, " elapsed=%s", t.Elapsed)
		}
		if t.Msg != "" {
			fmt.Fprintf(&b, " msg=%q", t.Msg)
		}
		if t.Err != "" {
			fmt.Fprintf(&b, " err=%q", t.Err)
		}
	}
	if ev.Msg != "" {
		b.WriteString(" " + ev.Msg)
	}
	if ev.Err != "" {
		fmt.Fprintf(&b, " err=%q unreachable=%v", ev.Err, ev.Unreachable)
	}
	if ev.Elapsed > 0 {
		fmt.Fprintf(&b, " elapsed=%s", ev.Elapsed)
	}
	if len(ev.Hosts) > 0 {
		fmt.Fprintf(&b, " hosts=%s", strings.Join(ev.Hosts, ","))
	}
	b.WriteByte('\n')
	if t := ev.Task; t != nil && t.Diff != "" {
		for _, dl := range strings.Split(strings.TrimRight(t.Diff, "\n"), "\n") {
			b.WriteString("    " + dl + "\n")
		}
	}
	if ev.Type == engine.EventRunDone && ev.Result != nil {
		PrintRecap(&b, ev.Result)
	}
	l.w.WriteString(b.String())
	if ev.Type == engine.EventRunDone || ev.Type == engine.EventHostFailed {
		l.w.Flush()
	}
}

// Close flushes and closes the file.
func (l *RunLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.Flush()
	return l.f.Close()
}
