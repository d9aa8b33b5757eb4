package sshx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Error kinds. Every connection failure is a *ConnectError whose Kind is one of these, so
// errors.Is(err, sshx.ErrAuth) etc. work. All of them make a host "unreachable" in Ansible's
// sense (exit code 4); see IsUnreachable.
var (
	// ErrUnreachable: refused, timed out, no route, name not resolved, closed during handshake.
	ErrUnreachable = errors.New("unreachable")
	// ErrAuth: the server rejected every key.
	ErrAuth = errors.New("authentication failed")
	// ErrHostKey is the parent of ErrHostKeyChanged and ErrHostKeyUnknown: never retried.
	ErrHostKey        = errors.New("host key verification failed")
	ErrHostKeyChanged = errors.New("host key changed")
	ErrHostKeyUnknown = errors.New("host key unknown")
	// ErrConnectionLost: an established connection died during a command.
	ErrConnectionLost = errors.New("connection lost")
	// ErrConfig: the ssh configuration or a key file is unusable; retrying cannot help.
	ErrConfig = errors.New("ssh configuration error")
)

// ConnectError is why a host could not be reached.
type ConnectError struct {
	Host     string // inventory name
	Endpoint string // user@host:port
	Via      string // jump chain, "" when direct
	Hop      string // the jump host that failed, "" when the target itself failed
	Kind     error  // ErrUnreachable, ErrAuth, ErrHostKeyChanged, ErrHostKeyUnknown, ErrConfig
	Attempts int
	Elapsed  time.Duration
	Err      error
}

func (e *ConnectError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ", e.Host)
	if e.Hop != "" {
		fmt.Fprintf(&b, "jump host %s: ", e.Hop)
	}
	fmt.Fprintf(&b, "%v", e.Err)
	if e.Kind == ErrUnreachable || e.Kind == ErrAuth {
		fmt.Fprintf(&b, " (%s", e.Endpoint)
		if e.Via != "" {
			fmt.Fprintf(&b, " via %s", e.Via)
		}
		if e.Attempts > 1 {
			fmt.Fprintf(&b, ", %d attempts over %s", e.Attempts, e.Elapsed.Round(100*time.Millisecond))
		}
		b.WriteString(")")
	}
	return b.String()
}

func (e *ConnectError) Unwrap() error { return e.Err }

func (e *ConnectError) Is(target error) bool {
	if target == e.Kind {
		return true
	}
	return target == ErrHostKey && (e.Kind == ErrHostKeyChanged || e.Kind == ErrHostKeyUnknown)
}

// HostKeyError explains a host key that does not verify.
type HostKeyError struct {
	Host    string // the name looked up in known_hosts (host or [host]:port)
	Key     ssh.PublicKey
	Known   []knownhosts.KnownKey // non-empty: the key changed
	Files   []string
	Revoked bool
}

func (e *HostKeyError) Error() string {
	fp := ssh.FingerprintSHA256(e.Key)
	switch {
	case e.Revoked:
		return fmt.Sprintf("host key %s %s for %s is revoked in known_hosts", e.Key.Type(), fp, e.Host)
	case len(e.Known) > 0:
		k := e.Known[0]
		return fmt.Sprintf("HOST KEY CHANGED for %s: server offers %s %s but %s:%d has %s %s; "+
			"this may be an attack, or the host was rebuilt: if so remove the old entry (ssh-keygen -R %s -f %s)",
			e.Host, e.Key.Type(), fp, k.Filename, k.Line, k.Key.Type(), ssh.FingerprintSHA256(k.Key), e.Host, k.Filename)
	default:
		return fmt.Sprintf("host key %s %s for %s is not in %s; verify it and add it, or pass --accept-new-host-keys (StrictHostKeyChecking accept-new)",
			e.Key.Type(), fp, e.Host, strings.Join(e.Files, ", "))
	}
}

// IsUnreachable reports whether err means the host could not be reached or authenticated
// (Ansible's UNREACHABLE, exit code 4) rather than a command failing on it.
func IsUnreachable(err error) bool {
	var ce *ConnectError
	return errors.As(err, &ce) || errors.Is(err, ErrConnectionLost)
}

// ExitError is a remote command that ran and exited non-zero (or died from a signal).
type ExitError struct {
	Host   string
	Cmd    string
	Code   int    // -1 when the server sent no exit status
	Signal string // e.g. "KILL" when killed
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return fmt.Sprintf("%s: command killed by signal %s", e.Host, e.Signal)
	}
	if e.Code < 0 {
		return fmt.Sprintf("%s: command exited without a status", e.Host)
	}
	return fmt.Sprintf("%s: command exited with status %d", e.Host, e.Code)
}

// SudoError is a become step that sudo refused.
type SudoError struct {
	Host, User string
	Reason     string // "cannot sudo without a password", ...
	Stderr     string
}

func (e *SudoError) Error() string { return fmt.Sprintf("%s on %s %s", e.User, e.Host, e.Reason) }

// classify sorts a dial/handshake error into a kind; hostkey and config errors are final.
func classify(err error) (kind error, retry bool) {
	var hk *HostKeyError
	switch {
	case errors.As(err, &hk):
		if len(hk.Known) > 0 || hk.Revoked {
			return ErrHostKeyChanged, false
		}
		return ErrHostKeyUnknown, false
	case errors.Is(err, ErrConfig):
		return ErrConfig, false
	case strings.Contains(err.Error(), "unable to authenticate"):
		return ErrAuth, true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
		return ErrUnreachable, false
	}
	return ErrUnreachable, true
}

// isTimeout reports network timeouts and our own deadline cancellations.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET)
}
