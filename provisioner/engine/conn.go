package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Conn runs commands on one host. *sshx.Client implements it.
type Conn interface {
	Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error
	Close() error
}

// Rooted is implemented by a Conn whose node paths live under a directory (tests): the engine then
// points the agent and the store under NodeRoot().
type Rooted interface{ NodeRoot() string }

// LocalConn runs commands with `sh -c` on this machine. With Root set, node paths (/opt/drover,
// /etc/...) are rewritten under Root by the engine and the agent, so tests never touch the real
// system. Env is appended to the process environment.
type LocalConn struct {
	Root string
	Env  []string
	// Hook, when set, may rewrite or refuse a command before it runs (tests inject failures).
	Hook func(cmd string) (string, error)
}

// Run implements Conn.
func (c *LocalConn) Run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if c.Hook != nil {
		var err error
		if cmd, err = c.Hook(cmd); err != nil {
			return err
		}
	}
	x := exec.CommandContext(ctx, "sh", "-c", cmd)
	x.Stdin, x.Stdout, x.Stderr = stdin, stdout, stderr
	x.Env = append(x.Environ(), c.Env...)
	// Like sshd closing a session: signal the whole process group, not only sh.
	x.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	x.Cancel = func() error { return syscall.Kill(-x.Process.Pid, syscall.SIGTERM) }
	x.WaitDelay = 5 * time.Second
	return x.Run()
}

// Close implements Conn.
func (c *LocalConn) Close() error { return nil }

// NodeRoot implements Rooted.
func (c *LocalConn) NodeRoot() string { return c.Root }

// ErrUnreachable marks errors where the host could not be reached or the transport broke, as
// opposed to a command that ran and failed. Exit code 4 instead of 2.
var ErrUnreachable = errors.New("unreachable")

type unreachableError struct{ err error }

func (e unreachableError) Error() string { return e.err.Error() }
func (e unreachableError) Unwrap() []error {
	return []error{e.err, ErrUnreachable}
}

// Unreachable marks err as a transport failure.
func Unreachable(err error) error {
	if err == nil || errors.Is(err, ErrUnreachable) {
		return err
	}
	return unreachableError{err}
}

// IsUnreachable reports whether err (or any error it wraps) is a transport failure.
func IsUnreachable(err error) bool { return errors.Is(err, ErrUnreachable) }

// CmdError is a command that ran on the host and exited non-zero.
type CmdError struct {
	Cmd    string
	Status int
	Stderr string // tail
}

func (e *CmdError) Error() string {
	msg := fmt.Sprintf("exit status %d", e.Status)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// exitStatus extracts an exit status from the errors of x/crypto/ssh (ExitStatus) and os/exec
// (ExitCode) without importing ssh.
func exitStatus(err error) (int, bool) {
	var ssh interface{ ExitStatus() int }
	if errors.As(err, &ssh) {
		return ssh.ExitStatus(), true
	}
	var ex *exec.ExitError
	if errors.As(err, &ex) {
		return ex.ExitCode(), true
	}
	return 0, false
}

// classify turns a Conn.Run error into a CmdError (ran and failed), the context's cause
// (canceled) or an unreachable error (transport).
func classify(ctx context.Context, cmd string, err error, stderr string) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", context.Cause(ctx), err)
	}
	if st, ok := exitStatus(err); ok {
		return &CmdError{Cmd: cmd, Status: st, Stderr: tail(stderr, 2000)}
	}
	if IsUnreachable(err) {
		return err
	}
	return Unreachable(err)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// tailBuffer keeps the last max bytes written.
type tailBuffer struct {
	buf bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf.Write(p)
	if t.buf.Len() > 2*t.max {
		b := t.buf.Bytes()[t.buf.Len()-t.max:]
		nb := append([]byte(nil), b...)
		t.buf.Reset()
		t.buf.Write(nb)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return tail(t.buf.String(), t.max) }

// ShellQuote quotes s for POSIX sh.
func ShellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
