package sshx

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Options configure a Pool. Zero values mean the defaults documented per field.
type Options struct {
	// ConfigFile replaces ~/.ssh/config and /etc/ssh/ssh_config, like ssh -F.
	ConfigFile string
	// Home is the user's home (default $HOME); ~ and the default key/known_hosts paths use it.
	Home string
	// LocalUser is the default remote user (default: the current user).
	LocalUser string
	// AgentSocket is the ssh-agent socket (default $SSH_AUTH_SOCK; "none" disables the agent).
	AgentSocket string
	// AcceptNewHostKeys records unknown host keys, as StrictHostKeyChecking=accept-new.
	AcceptNewHostKeys bool
	// ConnectTimeout bounds connecting to one host including retries (default 30s).
	ConnectTimeout time.Duration
	// AttemptTimeout bounds one TCP connect + SSH handshake (default 10s, at most ConnectTimeout).
	AttemptTimeout time.Duration
	// Forks is the number of hosts ForEach works on at once (default 50).
	Forks int
	// MaxHandshakesPerJump bounds concurrent handshakes through one jump host (default 10:
	// sshd's MaxStartups 10:30:100 starts dropping unauthenticated connections beyond that).
	MaxHandshakesPerJump int
	// Warnf receives warnings (unsupported ssh_config blocks, recorded host keys...).
	Warnf func(format string, args ...any)
}

// Pool holds one SSH connection per host (and per jump host) for a run.
type Pool struct {
	opts             Options
	cfg              *sshConfig
	home             string
	localUser        string
	localHost        string
	globalKnownHosts []string
	keys             *keyring
	hostKeys         *hostKeys

	mu      sync.Mutex
	conns   map[string]*connEntry
	jumpSem map[string]chan struct{}
	closed  bool
}

type connEntry struct {
	ready  chan struct{}
	client *ssh.Client
	ep     *Endpoint
	err    error
}

// NewPool reads the ssh configuration.
func NewPool(opts Options) (*Pool, error) {
	if opts.Home == "" {
		opts.Home, _ = os.UserHomeDir()
	}
	if opts.LocalUser == "" {
		if u, err := user.Current(); err == nil {
			opts.LocalUser = u.Username
		} else {
			opts.LocalUser = os.Getenv("USER")
		}
	}
	if opts.AgentSocket == "" {
		opts.AgentSocket = os.Getenv("SSH_AUTH_SOCK")
	} else if opts.AgentSocket == "none" {
		opts.AgentSocket = ""
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 30 * time.Second
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 10 * time.Second
	}
	if opts.AttemptTimeout > opts.ConnectTimeout {
		opts.AttemptTimeout = opts.ConnectTimeout
	}
	if opts.Forks <= 0 {
		opts.Forks = 50
	}
	if opts.MaxHandshakesPerJump <= 0 {
		opts.MaxHandshakesPerJump = 10
	}
	if opts.Warnf == nil {
		opts.Warnf = func(string, ...any) {}
	}
	paths := []string{filepath.Join(opts.Home, ".ssh", "config"), "/etc/ssh/ssh_config"}
	global := []string{"/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"}
	if opts.ConfigFile != "" {
		if _, err := os.Stat(opts.ConfigFile); err != nil {
			return nil, fmt.Errorf("ssh config: %w", err)
		}
		paths = []string{opts.ConfigFile}
	}
	cfg, err := loadSSHConfig(paths, opts.Home)
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.warnings {
		opts.Warnf("%s", w)
	}
	p := &Pool{
		opts: opts, cfg: cfg, home: opts.Home, localUser: opts.LocalUser, localHost: localHostName(),
		globalKnownHosts: global,
		keys:             &keyring{home: opts.Home, sock: opts.AgentSocket, warnf: opts.Warnf, files: map[string]*keyFile{}},
		hostKeys:         newHostKeys(opts.Warnf),
		conns:            map[string]*connEntry{},
		jumpSem:          map[string]chan struct{}{},
	}
	return p, nil
}

// Options returns the effective options.
func (p *Pool) Options() Options { return p.opts }

// Connect returns the host's connection, dialling it (with retries, see Options) the first
// time. Concurrent calls for the same host share one dial.
func (p *Pool) Connect(ctx context.Context, t Target) (*Client, error) {
	ep, err := p.Resolve(t)
	if err != nil {
		return nil, &ConnectError{Host: t.Name, Endpoint: t.Address, Kind: ErrConfig, Err: err}
	}
	c, err := p.connect(ctx, ep, true)
	if err != nil {
		var ce *ConnectError
		if errors.As(err, &ce) {
			ce.Host = t.Name
		}
		return nil, err
	}
	return &Client{Name: t.Name, Endpoint: ep, Become: t.Become, ssh: c, pool: p}, nil
}

// connect returns the shared connection for ep; retry enables the backoff loop (the jump
// hops of a target are dialled once per attempt of the target's own loop).
func (p *Pool) connect(ctx context.Context, ep *Endpoint, retry bool) (*ssh.Client, error) {
	key := ep.key()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("ssh pool closed")
	}
	if e, ok := p.conns[key]; ok {
		p.mu.Unlock()
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err == nil {
			return e.client, nil
		}
		if !retry {
			return nil, e.err
		}
		// The shared dial failed; dial again below under our own retry budget.
		p.mu.Lock()
		if p.conns[key] == e {
			delete(p.conns, key)
		}
		p.mu.Unlock()
		return p.connect(ctx, ep, retry)
	}
	e := &connEntry{ready: make(chan struct{}), ep: ep}
	p.conns[key] = e
	p.mu.Unlock()

	e.client, e.err = p.dialRetry(ctx, ep, retry)
	p.mu.Lock()
	if e.err != nil {
		if p.conns[key] == e {
			delete(p.conns, key)
		}
	} else if p.closed {
		e.client.Close()
		e.err = errors.New("ssh pool closed")
	}
	p.mu.Unlock()
	close(e.ready)
	if e.err == nil {
		go func(c *ssh.Client) {
			_ = c.Wait()
			p.mu.Lock()
			if p.conns[key] == e {
				delete(p.conns, key)
			}
			p.mu.Unlock()
		}(e.client)
	}
	return e.client, e.err
}

func (p *Pool) dialRetry(ctx context.Context, ep *Endpoint, retry bool) (*ssh.Client, error) {
	start := time.Now()
	budget := p.opts.ConnectTimeout
	deadline := start.Add(budget)
	backoff := 200 * time.Millisecond
	attempts := 0
	var prevErr error
	var prevHop string
	for {
		attempts++
		c, hop, err := p.dialOnce(ctx, ep, deadline)
		if err == nil {
			return c, nil
		}
		kind, again := classify(err)
		remaining := time.Until(deadline)
		if ctx.Err() != nil {
			again = false
		}
		if !retry || !again || remaining <= 0 {
			if prevErr != nil && isTimeout(err) && remaining <= 0 {
				// The last attempt only had the end of the budget; the one before says more
				// (e.g. the auth failure or the handshake that never completed).
				err, hop = prevErr, prevHop
				kind, _ = classify(err)
			}
			ce := &ConnectError{Endpoint: ep.String(), Via: ep.Via(), Hop: hop, Kind: kind, Attempts: attempts, Elapsed: time.Since(start), Err: err}
			var inner *ConnectError
			if errors.As(err, &inner) {
				// A jump hop failed: report its kind and message, not a wrapper of it.
				ce.Kind, ce.Hop, ce.Err = inner.Kind, inner.Endpoint, inner.Err
			}
			return nil, ce
		}
		prevErr, prevHop = err, hop
		sleep := backoff/2 + rand.N(backoff/2+1)
		if sleep > remaining {
			sleep = remaining
		}
		select {
		case <-time.After(sleep):
		case <-ctx.Done():
			return nil, &ConnectError{Endpoint: ep.String(), Via: ep.Via(), Kind: ErrUnreachable, Attempts: attempts, Elapsed: time.Since(start), Err: ctx.Err()}
		}
		if backoff < 3*time.Second {
			backoff *= 2
		}
	}
}

// dialOnce makes one attempt: reach the jump host (shared), open a TCP connection to ep
// directly or through it, and do the SSH handshake, all before deadline. hop names the jump
// host when that is what failed.
func (p *Pool) dialOnce(ctx context.Context, ep *Endpoint, deadline time.Time) (c *ssh.Client, hop string, err error) {
	began := time.Now()
	attemptDeadline := began.Add(p.opts.AttemptTimeout)
	if ep.ConnectTimeout > 0 && time.Now().Add(ep.ConnectTimeout).Before(attemptDeadline) {
		attemptDeadline = time.Now().Add(ep.ConnectTimeout)
	}
	if deadline.Before(attemptDeadline) {
		attemptDeadline = deadline
	}
	actx, cancel := context.WithDeadline(ctx, attemptDeadline)
	defer cancel()

	auth, err := p.keys.authMethod(ep)
	if err != nil {
		return nil, "", err
	}
	cfg := &ssh.ClientConfig{
		User:              ep.User,
		Auth:              []ssh.AuthMethod{auth},
		HostKeyCallback:   p.hostKeys.verifier(ep),
		HostKeyAlgorithms: p.hostKeys.algorithms(ep),
	}

	var conn net.Conn
	if ep.Jump != nil {
		jc, jerr := p.connect(actx, ep.Jump, false)
		if jerr != nil {
			return nil, ep.Jump.String(), jerr
		}
		sem := p.semaphore(ep.Jump.key())
		select {
		case sem <- struct{}{}:
		case <-actx.Done():
			return nil, "", fmt.Errorf("waiting for a handshake slot on %s: %w", ep.Jump, actx.Err())
		}
		defer func() { <-sem }()
		conn, err = jc.DialContext(actx, "tcp", ep.Addr())
		if err != nil {
			return nil, "", fmt.Errorf("dial %s through %s: %w", ep.Addr(), ep.Jump, err)
		}
	} else {
		var d net.Dialer
		conn, err = d.DialContext(actx, "tcp", ep.Addr())
		if err != nil {
			return nil, "", err
		}
	}

	// Channels through a jump host do not support deadlines, so bound the handshake by closing
	// the connection from outside.
	stop := context.AfterFunc(actx, func() { conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, ep.knownHostsName(), cfg)
	if !stop() {
		// The deadline (or ctx) fired during the handshake.
		if err == nil {
			sc.Close()
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		return nil, "", fmt.Errorf("ssh handshake with %s timed out after %s (the server accepted TCP but did not complete the SSH handshake)",
			ep.Addr(), time.Since(began).Round(100*time.Millisecond))
	}
	if err != nil {
		conn.Close()
		return nil, "", err
	}
	return ssh.NewClient(sc, chans, reqs), "", nil
}

func (p *Pool) semaphore(key string) chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.jumpSem[key]
	if s == nil {
		s = make(chan struct{}, p.opts.MaxHandshakesPerJump)
		p.jumpSem[key] = s
	}
	return s
}

// ForEach calls fn for i in [0,n) with at most Forks calls in flight and waits for all.
func (p *Pool) ForEach(ctx context.Context, n int, fn func(ctx context.Context, i int)) {
	sem := make(chan struct{}, p.opts.Forks)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		// Every index gets its call, even after ctx is cancelled (fn sees it), so that every
		// host gets a result.
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			fn(ctx, i)
		}(i)
	}
	wg.Wait()
}

// Close closes every connection, targets before the jump hosts they go through.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	entries := make([]*connEntry, 0, len(p.conns))
	for _, e := range p.conns {
		entries = append(entries, e)
	}
	p.conns = map[string]*connEntry{}
	p.mu.Unlock()
	depth := func(e *connEntry) int { return len(e.ep.Chain()) }
	for d := 8; d >= 0; d-- {
		for _, e := range entries {
			select {
			case <-e.ready:
			default:
				continue
			}
			if depth(e) == d && e.client != nil {
				e.client.Close()
			}
		}
	}
	return nil
}
