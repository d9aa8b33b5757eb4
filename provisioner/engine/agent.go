package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/drover/drover/agent/protocol"
)

// Artifact is a local file pushed content-addressed to the nodes' store. Its hash is computed
// once; its compressed form only when some host really needs the upload, so a no-op run never
// pays for compressing tens of megabytes.
type Artifact struct {
	Name string // for messages: "drover-broker"
	Path string // local file

	hashOnce sync.Once
	sha256   string
	err      error

	compOnce   sync.Once
	compressed []byte
	compErr    error
}

// SHA256 hashes the artifact once, streaming (safe for concurrent use).
func (a *Artifact) SHA256() (string, error) {
	a.hashOnce.Do(func() {
		f, err := os.Open(a.Path)
		if err != nil {
			a.err = fmt.Errorf("artifact %s: %w", a.Name, err)
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			a.err = fmt.Errorf("artifact %s: %w", a.Name, err)
			return
		}
		a.sha256 = hex.EncodeToString(h.Sum(nil))
	})
	return a.sha256, a.err
}

// Compressed returns the artifact compressed with compress, computed once. The bytes are checked
// against the hash taken before, so a binary rebuilt during the run is not shipped under the old
// name.
func (a *Artifact) Compressed(compress func([]byte) ([]byte, error)) ([]byte, error) {
	if _, err := a.SHA256(); err != nil {
		return nil, err
	}
	a.compOnce.Do(func() {
		b, err := os.ReadFile(a.Path)
		if err != nil {
			a.compErr = fmt.Errorf("artifact %s: %w", a.Name, err)
			return
		}
		if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != a.sha256 {
			a.compErr = fmt.Errorf("artifact %s changed on disk during the run", a.Name)
			return
		}
		a.compressed, a.compErr = compress(b)
	})
	return a.compressed, a.compErr
}

func compressZstd(b []byte) ([]byte, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil), nil
}

func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// EnsureAgent makes /opt/drover/bin/drover-agent the controller's agent build on every host.
// One small command reads the link target (the store name is the content hash) and the agent's
// protocol; if either differs, the binary is streamed gzip'ed through a POSIX shell pipeline
// (mkdir, gunzip to a temp file in the store, sha256sum check, chmod, rename, flip the symlink),
// so no node ever runs a half-written agent. In check mode the agent is still installed: it is
// drover's own tool, outside the managed state, and check mode needs it to compute diffs.
type EnsureAgent struct {
	// Path of the linux agent binary to push (bin/drover-agent).
	Path string
	// Artifacts, when set, lists what the push-artifacts phase will need on h: the check then
	// also asks the agent which of those hashes the store holds, in the same round trip.
	Artifacts func(h *Host) []*Artifact

	art Artifact
}

func (e *EnsureAgent) Title() string { return "ensure agent" }

func (e *EnsureAgent) Prepare(ctx context.Context, hosts []*Host) error {
	e.art.Name, e.art.Path = "drover-agent", e.Path
	_, err := e.art.SHA256()
	return err
}

func (e *EnsureAgent) Run(ctx context.Context, h *Host) error {
	h.Step("check agent")
	e.art.Name, e.art.Path = "drover-agent", e.Path
	hash, err := e.art.SHA256()
	if err != nil {
		return err
	}
	link := h.NodePath(protocol.AgentPath)
	check := fmt.Sprintf(`t=$(readlink %s 2>/dev/null); p=$(%s --protocol 2>/dev/null); printf '%%s\n%%s\n' "$t" "$p"`, ShellQuote(link), ShellQuote(link))
	var want []string
	if e.Artifacts != nil {
		for _, a := range e.Artifacts(h) {
			s, err := a.SHA256()
			if err != nil {
				return err
			}
			want = append(want, s)
		}
		if len(want) > 0 {
			// only a current agent is asked; an old one is replaced below and asked later
			check += fmt.Sprintf(`; case "$t" in */%s) [ "$p" = %d ] && %s;; esac; true`, hash, protocol.ProtocolVersion, h.Agent(append([]string{"has"}, want...)...))
		}
	}
	out, err := h.Exec(ctx, check, nil)
	if err != nil {
		return err
	}
	lines := strings.Split(string(out), "\n")
	target, proto := "", ""
	if len(lines) > 0 {
		target = strings.TrimSpace(lines[0])
	}
	if len(lines) > 1 {
		proto = strings.TrimSpace(lines[1])
	}
	if strings.HasSuffix(target, "/"+hash) && proto == strconv.Itoa(protocol.ProtocolVersion) {
		if len(want) > 0 {
			have := map[string]bool{}
			for _, l := range lines[2:] {
				if l = strings.TrimSpace(l); l != "" {
					have[l] = true
				}
			}
			h.mu.Lock()
			h.have = have
			h.mu.Unlock()
		}
		h.Report("agent", protocol.StatusOK, "agent "+hash[:12])
		return nil
	}
	h.Logf("agent on node: link %q protocol %q; want %s protocol %d", target, proto, hash, protocol.ProtocolVersion)
	h.Step("upload agent")
	gz, err := e.art.Compressed(gzipBytes)
	if err != nil {
		return err
	}
	store, bin := h.NodePath(protocol.StoreDir), h.NodePath(protocol.BinDir)
	script := fmt.Sprintf(`set -e; umask 022; s=%s; b=%s; mkdir -p "$s" "$b"; t="$s/.up-%s.$$"; trap 'rm -f "$t"' EXIT; `+
		`gzip -dc > "$t"; echo "%s  $t" | sha256sum -c --status -; chmod 0755 "$t"; mv -f "$t" "$s/%s"; trap - EXIT; `+
		`ln -sfn ../store/%s "$b/.drover-agent.new"; mv -Tf "$b/.drover-agent.new" "$b/drover-agent"; "$b/drover-agent" --protocol`,
		ShellQuote(store), ShellQuote(bin), hash[:12], hash, hash, hash)
	out, err = h.Exec(ctx, h.Privileged(script), bytes.NewReader(gz))
	if err != nil {
		return fmt.Errorf("upload agent: %w", err)
	}
	if got := strings.TrimSpace(string(out)); got != strconv.Itoa(protocol.ProtocolVersion) {
		return fmt.Errorf("uploaded agent reports protocol %q, want %d", got, protocol.ProtocolVersion)
	}
	from := "none"
	if target != "" {
		from = target[strings.LastIndex(target, "/")+1:]
		if len(from) > 12 {
			from = from[:12]
		}
	}
	h.Report("agent", protocol.StatusChanged, fmt.Sprintf("agent %s -> %s (%d bytes gzip)", from, hash[:12], len(gz)))
	return nil
}

// PushArtifacts uploads the artifacts a host needs, skipping every hash the node's store already
// holds (one `drover-agent has` round trip, then one zstd stream per missing artifact into
// `drover-agent put`, which verifies the hash before renaming into place). Check mode asks but
// uploads nothing.
type PushArtifacts struct {
	// For returns the artifacts host h needs.
	For func(h *Host) []*Artifact
}

func (p *PushArtifacts) Title() string { return "push artifacts" }

func (p *PushArtifacts) Prepare(ctx context.Context, hosts []*Host) error {
	var errs []error
	seen := map[*Artifact]bool{}
	for _, h := range hosts {
		for _, a := range p.For(h) {
			if !seen[a] {
				seen[a] = true
				if _, err := a.SHA256(); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	return errors.Join(errs...)
}

func (p *PushArtifacts) Run(ctx context.Context, h *Host) error {
	arts := p.For(h)
	if len(arts) == 0 {
		return nil
	}
	args := []string{"has"}
	for _, a := range arts {
		s, err := a.SHA256()
		if err != nil {
			return err
		}
		args = append(args, s)
	}
	h.mu.Lock()
	have := h.have // asked by ensure-agent in its own round trip, when it could
	h.have = nil
	h.mu.Unlock()
	if have == nil {
		h.Step("which artifacts exist")
		out, err := h.Exec(ctx, h.Agent(args...), nil)
		if err != nil {
			return err
		}
		have = map[string]bool{}
		for _, l := range strings.Fields(string(out)) {
			have[l] = true
		}
	}
	for _, a := range arts {
		if have[a.sha256] {
			h.Report(a.Name, protocol.StatusOK, "present "+a.sha256[:12])
			continue
		}
		if h.Check() {
			h.Report(a.Name, protocol.StatusChanged, "would upload "+a.sha256[:12])
			continue
		}
		h.Step("upload " + a.Name)
		zst, err := a.Compressed(compressZstd)
		if err != nil {
			return err
		}
		cmd := h.Privileged(h.Agent("put", "--sha256", a.sha256, "--compress", "zstd"))
		if _, err := h.Exec(ctx, cmd, bytes.NewReader(zst)); err != nil {
			h.Report(a.Name, protocol.StatusFailed, err.Error())
			return &HostError{Host: h.Name, Step: "upload " + a.Name, Err: err, Unreachable: IsUnreachable(err)}
		}
		have[a.sha256] = true
		h.Report(a.Name, protocol.StatusChanged, fmt.Sprintf("uploaded %s (%d bytes zstd)", a.sha256[:12], len(zst)))
	}
	return nil
}

// Apply sends a host's whole task list to one agent invocation and streams its events.
type Apply struct {
	Name string // phase title, e.g. "apply coordinators"
	// Plan returns the tasks and owned path prefixes of h. A nil task list skips the host.
	Plan func(h *Host) (tasks []protocol.Task, owned []string, err error)
	// Select, when set, restricts the phase to the hosts it returns true for.
	Select func(h *Host) bool
}

func (a *Apply) Title() string {
	if a.Name == "" {
		return "apply"
	}
	return a.Name
}

func (a *Apply) ShouldRun(h *Host) bool { return a.Select == nil || a.Select(h) }

func (a *Apply) Run(ctx context.Context, h *Host) error {
	tasks, owned, err := a.Plan(h)
	if err != nil {
		return &HostError{Host: h.Name, Step: "plan", Err: err}
	}
	if tasks == nil {
		return nil
	}
	req := protocol.Request{Version: protocol.ProtocolVersion, Check: h.Check(), Diff: true, Owned: owned, Tasks: tasks}
	_, err = RunAgent(ctx, h, req)
	return err
}

// RunAgent runs one agent invocation on h with req (privileged), forwarding every event to the
// host (display, counters, results) and returning the summary. A failed task comes back as a
// *HostError whose Step is the task id.
func RunAgent(ctx context.Context, h *Host, req protocol.Request) (*protocol.Summary, error) {
	sum, _, err := runAgentCmd(ctx, h, h.Privileged(h.Agent("apply")), req)
	return sum, err
}

// needMarker starts the line Converge's fast-path script prints instead of running the agent.
const needMarker = "DROVER-NEED "

// runAgentCmd runs cmd (an agent apply, possibly behind a guard script) with req on stdin. When
// the guard prints needMarker instead, need holds the rest of that line and nothing ran.
func runAgentCmd(ctx context.Context, h *Host, cmd string, req protocol.Request) (sum *protocol.Summary, need string, err error) {
	if req.Version == 0 {
		req.Version = protocol.ProtocolVersion
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, "", err
	}
	pr, pw := io.Pipe()
	var failed *protocol.Event
	var decodeErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, needMarker) {
				need = strings.TrimPrefix(line, needMarker)
				continue
			}
			var ev protocol.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				h.Logf("agent: %s", sc.Text())
				continue
			}
			switch {
			case ev.Status == protocol.StatusDone:
				sum = ev.Summary
			case ev.Task == "" && ev.Status == protocol.StatusFailed:
				e := ev
				failed = &e
			default:
				if ev.Status == protocol.StatusFailed && failed == nil {
					e := ev
					failed = &e
				}
				if ev.Facts != nil {
					h.mu.Lock()
					h.Facts = ev.Facts
					h.mu.Unlock()
				}
				h.Task(ev)
			}
		}
		decodeErr = sc.Err()
		io.Copy(io.Discard, pr)
	}()
	runErr := h.Stream(ctx, cmd, bytes.NewReader(body), pw)
	pw.Close()
	<-done
	if need != "" && runErr == nil {
		return nil, need, nil
	}
	if failed != nil {
		step := failed.Task
		if step == "" {
			step = "agent"
		}
		return sum, "", &HostError{Host: h.Name, Step: step, Err: errors.New(failed.Err)}
	}
	if runErr != nil {
		return sum, "", runErr
	}
	if decodeErr != nil {
		return sum, "", fmt.Errorf("read agent events: %w", decodeErr)
	}
	if sum == nil {
		return nil, "", errors.New("agent ended without a summary")
	}
	return sum, "", nil
}

// Converge is EnsureAgent + PushArtifacts + Apply for one host in a single SSH session whenever
// the node already holds this agent build and every artifact (every no-op or config-only run):
// a guard script checks the agent link and the store files and then execs the agent's apply. When
// something is missing it says so instead, and Converge falls back to the three separate steps.
type Converge struct {
	Agent *EnsureAgent
	Push  *PushArtifacts // may be nil
	Apply *Apply
}

func (c *Converge) Title() string          { return c.Apply.Title() }
func (c *Converge) ShouldRun(h *Host) bool { return c.Apply.ShouldRun(h) }

func (c *Converge) Prepare(ctx context.Context, hosts []*Host) error {
	if err := c.Agent.Prepare(ctx, hosts); err != nil {
		return err
	}
	if c.Push != nil {
		return c.Push.Prepare(ctx, hosts)
	}
	return nil
}

func (c *Converge) Run(ctx context.Context, h *Host) error {
	tasks, owned, err := c.Apply.Plan(h)
	if err != nil {
		return &HostError{Host: h.Name, Step: "plan", Err: err}
	}
	if tasks == nil {
		return nil
	}
	hash, err := c.Agent.art.SHA256()
	if err != nil {
		return err
	}
	var files []string
	if c.Push != nil {
		for _, a := range c.Push.For(h) {
			s, err := a.SHA256()
			if err != nil {
				return err
			}
			files = append(files, ShellQuote(h.NodePath(protocol.StoreDir+"/"+s)))
		}
	}
	guard := fmt.Sprintf(`case "$(readlink %s 2>/dev/null)" in */%s) ;; *) echo '%sagent'; exit 0;; esac; `,
		ShellQuote(h.NodePath(protocol.AgentPath)), hash, needMarker)
	if len(files) > 0 {
		guard += fmt.Sprintf(`for f in %s; do [ -f "$f" ] || { echo '%sartifacts'; exit 0; }; done; `, strings.Join(files, " "), needMarker)
	}
	h.Step(c.Apply.Title())
	req := protocol.Request{Version: protocol.ProtocolVersion, Check: h.Check(), Diff: true, Owned: owned, Tasks: tasks}
	_, need, err := runAgentCmd(ctx, h, h.Privileged(guard+"exec "+h.Agent("apply")), req)
	if err != nil || need == "" {
		return err
	}
	h.Logf("converge: node needs %s; taking the long way", need)
	if err := c.Agent.Run(ctx, h); err != nil {
		return err
	}
	if c.Push != nil {
		if err := c.Push.Run(ctx, h); err != nil {
			return err
		}
	}
	return c.Apply.Run(ctx, h)
}

// Facts gathers node facts into h.Facts with one unprivileged agent call.
type Facts struct{}

func (Facts) Title() string { return "facts" }

func (Facts) Run(ctx context.Context, h *Host) error {
	out, err := h.Exec(ctx, h.Agent("facts"), nil)
	if err != nil {
		return err
	}
	var f protocol.Facts
	if err := json.Unmarshal(out, &f); err != nil {
		return fmt.Errorf("decode facts: %w", err)
	}
	h.mu.Lock()
	h.Facts = &f
	h.mu.Unlock()
	h.Report("facts", protocol.StatusOK, strings.TrimSpace(f.OSPretty+" "+f.Kernel))
	return nil
}

// Connect sets h.Conn with dial; failures are unreachable. Hosts that already have a Conn are
// left alone.
type Connect struct {
	Dial func(ctx context.Context, h *Host) (Conn, error)
}

func (Connect) Title() string { return "connect" }

func (c Connect) Run(ctx context.Context, h *Host) error {
	if h.Conn != nil {
		return nil
	}
	conn, err := c.Dial(ctx, h)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return Unreachable(err)
	}
	h.Conn = conn
	return nil
}

// CloseAll closes every host's connection.
func CloseAll(hosts []*Host) {
	for _, h := range hosts {
		if h.Conn != nil {
			h.Conn.Close()
		}
	}
}
