package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// Client is one host's connection. Sessions are multiplexed over it: Run may be called
// concurrently (sshd's MaxSessions, default 10, bounds how many at once).
type Client struct {
	Name     string // inventory host name
	Endpoint *Endpoint
	// Become: privileged commands go through sudo when the user is not root.
	Become bool

	ssh  *ssh.Client
	pool *Pool
}

// SSH exposes the underlying connection (e.g. for SFTP).
func (c *Client) SSH() *ssh.Client { return c.ssh }

// User is the remote login user.
func (c *Client) User() string { return c.Endpoint.User }

// Close closes the host's connection for everyone sharing it; a run normally closes the Pool
// instead. Jump host connections stay open until the Pool is closed.
func (c *Client) Close() error { return c.ssh.Close() }

// Run runs cmd through the remote user's shell. A non-zero exit returns *ExitError; a
// cancelled ctx kills the command and closes the session; a dead connection returns an error
// matching ErrConnectionLost.
func (c *Client) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	sess, err := c.ssh.NewSession()
	if err != nil {
		if isClosed(err) {
			return fmt.Errorf("%s: open session: %w: %v", c.Name, ErrConnectionLost, err)
		}
		return fmt.Errorf("%s: open session: %w", c.Name, err)
	}
	defer sess.Close()
	sess.Stdin = stdin
	sess.Stdout = stdout
	sess.Stderr = stderr
	if err := sess.Start(cmd); err != nil {
		return fmt.Errorf("%s: start command: %w", c.Name, err)
	}
	done := make(chan error, 1)
	go func() { done <- sess.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = sess.Signal(ssh.SIGKILL)
		sess.Close()
		return fmt.Errorf("%s: %w", c.Name, ctx.Err())
	}
	if err == nil {
		return nil
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return &ExitError{Host: c.Name, Cmd: cmd, Code: ee.ExitStatus(), Signal: ee.Signal()}
	}
	var em *ssh.ExitMissingError
	if errors.As(err, &em) {
		// The channel closed without a status: the connection most likely died.
		return fmt.Errorf("%s: %w: command ended without an exit status", c.Name, ErrConnectionLost)
	}
	if isClosed(err) {
		return fmt.Errorf("%s: %w: %v", c.Name, ErrConnectionLost, err)
	}
	return fmt.Errorf("%s: %w", c.Name, err)
}

// Output runs cmd and returns its stdout; stderr is included in the error.
func (c *Client) Output(ctx context.Context, cmd string) ([]byte, error) {
	var out, errb bytes.Buffer
	err := c.Run(ctx, cmd, nil, &out, &errb)
	if err != nil && errb.Len() > 0 {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), err
}

// Forward opens a TCP connection from the host to remoteAddr (direct-tcpip), e.g.
// "127.0.0.1:2181" to reach a service that only listens on the node.
func (c *Client) Forward(ctx context.Context, remoteAddr string) (net.Conn, error) {
	conn, err := c.ssh.DialContext(ctx, "tcp", remoteAddr)
	if err != nil {
		return nil, fmt.Errorf("%s: forward to %s: %w", c.Name, remoteAddr, err)
	}
	return conn, nil
}

// NeedsSudo reports whether privileged commands must go through sudo on this host.
func (c *Client) NeedsSudo() bool { return c.Become && c.Endpoint.User != "root" }

// BecomeCommand wraps cmd for privileged execution: "sudo -n -- sh -c '<cmd>'" when the host
// needs sudo, cmd unchanged otherwise. -n makes sudo fail instead of prompting.
func (c *Client) BecomeCommand(cmd string) string {
	if !c.NeedsSudo() {
		return cmd
	}
	return "sudo -n -- sh -c " + ShellQuote(cmd)
}

// RunBecome runs cmd with privileges (see BecomeCommand). When sudo itself refuses, the error
// is a *SudoError saying so ("ec2-user on node3 cannot sudo without a password") instead of a
// bare exit status.
func (c *Client) RunBecome(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if !c.NeedsSudo() {
		return c.Run(ctx, cmd, stdin, stdout, stderr)
	}
	capture := &headBuffer{max: 4096}
	var w io.Writer = capture
	if stderr != nil {
		w = io.MultiWriter(stderr, capture)
	}
	err := c.Run(ctx, c.BecomeCommand(cmd), stdin, stdout, w)
	var ee *ExitError
	if errors.As(err, &ee) {
		if reason := sudoFailure(ee.Code, capture.String()); reason != "" {
			return &SudoError{Host: c.Name, User: c.Endpoint.User, Reason: reason, Stderr: strings.TrimSpace(capture.String())}
		}
	}
	return err
}

// CheckSudo verifies that become works on the host (no-op when it is not needed).
func (c *Client) CheckSudo(ctx context.Context) error {
	if !c.NeedsSudo() {
		return nil
	}
	var errb bytes.Buffer
	err := c.RunBecome(ctx, "true", nil, nil, &errb)
	var ee *ExitError
	if errors.As(err, &ee) {
		return &SudoError{Host: c.Name, User: c.Endpoint.User, Reason: "cannot run commands with sudo: " + strings.TrimSpace(errb.String()), Stderr: errb.String()}
	}
	return err
}

func sudoFailure(code int, stderr string) string {
	s := strings.ToLower(stderr)
	switch {
	case strings.Contains(s, "sudo: a password is required"), strings.Contains(s, "sudo: a terminal is required"),
		strings.Contains(s, "no tty present"), strings.Contains(s, "sudo: no askpass program"):
		return "cannot sudo without a password (add a NOPASSWD sudoers rule)"
	case strings.Contains(s, "is not in the sudoers file"):
		return "is not in the sudoers file"
	case strings.Contains(s, "is not allowed to execute"):
		return "is not allowed to run this command as root through sudo"
	case code == 127 && strings.Contains(s, "sudo") && strings.Contains(s, "not found"):
		return "cannot sudo: sudo is not installed"
	}
	return ""
}

// ShellQuote quotes s for a POSIX shell.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

// headBuffer keeps the first max bytes written to it.
type headBuffer struct {
	mu  sync.Mutex
	max int
	buf bytes.Buffer
}

func (h *headBuffer) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if room := h.max - h.buf.Len(); room > 0 {
		if len(p) < room {
			room = len(p)
		}
		h.buf.Write(p[:room])
	}
	return len(p), nil
}

func (h *headBuffer) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.buf.String()
}
