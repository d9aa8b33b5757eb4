package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Options are the knobs that do not belong in zoo.cfg.
type Options struct {
	// Logger receives drover's own messages; nil means slog.Default().
	Logger *slog.Logger
	// EtcdLogger receives etcd's zap logging; nil means warn level and above on stderr.
	EtcdLogger *zap.Logger
	// ClientListener, when set, is used instead of listening on clientPortAddress:clientPort
	// (tests pass a listener on a random port so there is no bind race).
	ClientListener net.Listener
	// Version is reported by srvr/mntr.
	Version string
}

// Member is one running coordinator: an embedded etcd member behind a client port that also
// answers ZooKeeper four-letter words.
type Member struct {
	cfg     *Config
	log     *slog.Logger
	etcd    *embed.Etcd
	ln      net.Listener
	backend string // etcd's private client listener on loopback
	version string
	started time.Time

	mu    sync.Mutex
	conns map[*proxyConn]struct{}

	accepted  atomic.Int64
	received  atomic.Int64
	sent      atomic.Int64
	closing   atomic.Bool
	quiet     *atomic.Bool // silences etcd's warnings about peers going away during our own stop
	stopOnce  sync.Once
	stopped   chan struct{}
	serveDone chan struct{}
}

// Start prepares the data dir (myid / cluster marker checks), starts the embedded etcd member
// and the client port. It returns once etcd is started, not once the cluster has a leader:
// wait on Ready for that.
func Start(cfg *Config, opts Options) (*Member, error) {
	lg := opts.Logger
	if lg == nil {
		lg = slog.Default()
	}
	self, err := cfg.Self()
	if err != nil {
		return nil, err
	}
	if err := prepareDataDir(cfg); err != nil {
		return nil, err
	}

	ln := opts.ClientListener
	if ln == nil {
		addr := net.JoinHostPort(cfg.ClientPortAddress, strconv.Itoa(cfg.ClientPort))
		if ln, err = net.Listen("tcp", addr); err != nil {
			return nil, fmt.Errorf("listen on client port: %w", err)
		}
	}
	quiet := new(atomic.Bool)
	ec, err := etcdConfig(cfg, self, ln.Addr(), opts.EtcdLogger, quiet)
	if err != nil {
		ln.Close()
		return nil, err
	}
	e, err := embed.StartEtcd(ec)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("start etcd member %s: %w", ec.Name, err)
	}
	if len(e.Clients) == 0 {
		e.Close()
		ln.Close()
		return nil, errors.New("start etcd: no client listener")
	}
	m := &Member{
		cfg:       cfg,
		log:       lg,
		etcd:      e,
		ln:        ln,
		backend:   e.Clients[0].Addr().String(),
		version:   opts.Version,
		started:   time.Now(),
		conns:     map[*proxyConn]struct{}{},
		stopped:   make(chan struct{}),
		serveDone: make(chan struct{}),
		quiet:     quiet,
	}
	if m.version == "" {
		m.version = "dev"
	}
	go m.serve()
	lg.Info("coordinator started", "member", ec.Name, "myid", cfg.MyID, "client", ln.Addr().String(),
		"peer", self.PeerURL(), "cluster", cfg.Token(), "heartbeat", time.Duration(ec.TickMs)*time.Millisecond,
		"election", time.Duration(ec.ElectionMs)*time.Millisecond)
	return m, nil
}

func etcdConfig(cfg *Config, self Server, clientAddr net.Addr, zl *zap.Logger, quiet *atomic.Bool) (*embed.Config, error) {
	ec := embed.NewConfig()
	ec.Name = MemberName(cfg.MyID)
	ec.Dir = filepath.Join(cfg.DataDir, "etcd")
	if cfg.DataLogDir != "" {
		ec.WalDir = filepath.Join(cfg.DataLogDir, "etcd-wal")
	}
	hb, el := cfg.Timing()
	ec.TickMs = uint(hb / time.Millisecond)
	ec.ElectionMs = uint(el / time.Millisecond)

	peerURL, err := url.Parse(self.PeerURL())
	if err != nil {
		return nil, fmt.Errorf("peer url: %w", err)
	}
	// etcd binds only to IPs; a hostname in server.N means "listen everywhere", as ZooKeeper's
	// quorumListenOnAllIPs would.
	listenPeer := *peerURL
	if net.ParseIP(self.Host) == nil {
		listenPeer.Host = net.JoinHostPort("0.0.0.0", strconv.Itoa(self.PeerPort))
	}
	ec.ListenPeerUrls = []url.URL{listenPeer}
	ec.AdvertisePeerUrls = []url.URL{*peerURL}

	// etcd serves clients on a private loopback port; the public client port is ours and
	// forwards everything that is not a four-letter word.
	ec.ListenClientUrls = []url.URL{{Scheme: "http", Host: "127.0.0.1:0"}}
	_, port, _ := net.SplitHostPort(clientAddr.String())
	advHost := self.ClientHost
	if advHost == "" && cfg.ClientPortAddress != "" && !isUnspecified(cfg.ClientPortAddress) {
		advHost = cfg.ClientPortAddress
	}
	if advHost == "" {
		advHost = self.Host
	}
	ec.AdvertiseClientUrls = []url.URL{{Scheme: "http", Host: net.JoinHostPort(advHost, port)}}
	// The grpc-gateway dials the listen address, which is ":0" here; brokers use gRPC anyway.
	ec.EnableGRPCGateway = false

	var initial []string
	if len(cfg.Servers) == 0 {
		initial = []string{ec.Name + "=" + self.PeerURL()}
	}
	for _, s := range cfg.Servers {
		initial = append(initial, MemberName(s.ID)+"="+s.PeerURL())
	}
	ec.InitialCluster = strings.Join(initial, ",")
	ec.InitialClusterToken = cfg.Token()
	// With existing data etcd rebuilds membership from its WAL and ignores InitialCluster, so
	// "new" is right for both first start and restart of a member.
	ec.ClusterState = embed.ClusterStateFlagNew

	// Compaction is off by default in etcd; without it every broker offset commit stays in
	// history until the backend quota alarm stops all writes.
	ec.AutoCompactionMode = "periodic"
	hours := cfg.PurgeInterval
	if hours == 0 {
		hours = DefaultCompactionHours
	}
	ec.AutoCompactionRetention = strconv.Itoa(hours) + "h"
	ec.MaxSnapFiles = uint(cfg.SnapRetainCount)
	ec.MaxWalFiles = uint(cfg.SnapRetainCount)

	if zl == nil {
		zl = defaultEtcdLogger(quiet)
	}
	ec.Logger = "zap"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zl)
	return ec, nil
}

func isUnspecified(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// defaultEtcdLogger keeps etcd to warnings: at info it logs every raft step and drowns the
// journal.
func defaultEtcdLogger(quiet *atomic.Bool) *zap.Logger {
	enc := zap.NewDevelopmentEncoderConfig()
	enc.TimeKey = "" // journald stamps lines already
	enc.CallerKey = ""
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(os.Stderr), zap.WarnLevel)
	return zap.New(quietCore{core, quiet}).Named("etcd")
}

// etcdNoise are etcd warnings that are expected in drover's setup (etcd serves its private
// loopback port with gRPC and HTTP muxed; no auth; listeners closing on a clean stop; a
// fresh member's first storage-version check) and would only teach operators to ignore the
// journal.
var etcdNoise = []string{
	"Running http and grpc server on single port",
	"simple token is not cryptographically signed",
	"Failed to detect schema version",
	"failed to update storage version",
	"setting up serving from embedded etcd failed",
	"stopping insecure grpc server due to error",
	"stopped insecure grpc server due to error",
}

type quietCore struct {
	zapcore.Core
	stopping *atomic.Bool
}

func (q quietCore) With(f []zapcore.Field) zapcore.Core {
	return quietCore{q.Core.With(f), q.stopping}
}

func (q quietCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	// A clean stop makes etcd warn about every peer stream it closes.
	if q.stopping.Load() && e.Level < zapcore.ErrorLevel {
		return ce
	}
	for _, n := range etcdNoise {
		if strings.HasPrefix(e.Message, n) {
			return ce
		}
	}
	return q.Core.Check(e, ce)
}

// Config returns the member's configuration.
func (m *Member) Config() *Config { return m.cfg }

// ClientAddr is the public client address (gRPC + four-letter words).
func (m *Member) ClientAddr() string { return m.ln.Addr().String() }

// Etcd exposes the embedded server for tests and metrics.
func (m *Member) Etcd() *embed.Etcd { return m.etcd }

// Err reports fatal errors of the embedded server.
func (m *Member) Err() <-chan error { return m.etcd.Err() }

// Stopped is closed once Stop or Kill has finished.
func (m *Member) Stopped() <-chan struct{} { return m.stopped }

// Serving reports whether the member has joined a cluster that has a leader, and why not.
func (m *Member) Serving() (bool, string) {
	if m.closing.Load() {
		return false, "shutting down"
	}
	select {
	case <-m.etcd.Server.ReadyNotify():
	default:
		return false, "member has not joined the cluster yet"
	}
	select {
	case <-m.etcd.Server.StopNotify():
		return false, "etcd server stopped"
	default:
	}
	if m.etcd.Server.Lead() == 0 {
		return false, "cluster has no leader"
	}
	return true, ""
}

// WaitReady blocks until Serving reports true or ctx is done.
func (m *Member) WaitReady(ctx context.Context) error {
	select {
	case <-m.etcd.Server.ReadyNotify():
	case <-m.etcd.Server.StopNotify():
		return errors.New("etcd server stopped before it was ready")
	case <-ctx.Done():
		return fmt.Errorf("wait for cluster: %w", ctx.Err())
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if ok, _ := m.Serving(); ok {
			return nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			_, why := m.Serving()
			return fmt.Errorf("wait for cluster: %s: %w", why, ctx.Err())
		}
	}
}

// IsLeader reports whether this member currently leads.
func (m *Member) IsLeader() bool {
	s := m.etcd.Server
	return s.Lead() != 0 && s.Lead() == uint64(s.MemberID())
}

// TransferLeadership hands leadership to the best-connected voting member when this member
// leads a multi-member cluster; otherwise it does nothing.
func (m *Member) TransferLeadership() error {
	if !m.IsLeader() || m.votingMembers() < 2 {
		return nil
	}
	start := time.Now()
	if err := m.etcd.Server.TryTransferLeadershipOnShutdown(); err != nil {
		return fmt.Errorf("transfer leadership: %w", err)
	}
	m.log.Info("leadership transferred", "to", m.etcd.Server.Leader().String(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Stop shuts the member down gracefully: leadership moves to another member first, so the
// cluster never waits for an election timeout, then clients are disconnected and etcd stops.
func (m *Member) Stop() {
	m.stopOnce.Do(func() {
		// etcd would wait its full request timeout (5 s + 2 elections) for a transferee that
		// is itself stopping, e.g. when a whole fleet shuts down; a transfer that works takes a
		// few heartbeats, so give up much sooner and stop hard.
		_, election := m.cfg.Timing()
		transferred := make(chan error, 1)
		go func() { transferred <- m.TransferLeadership() }()
		hard := false
		select {
		case err := <-transferred:
			if err != nil {
				m.log.Warn("graceful stop without leadership transfer", "err", err)
			}
		case <-time.After(max(4*election, time.Second)):
			m.log.Warn("leadership transfer timed out; stopping without it", "after", max(4*election, time.Second))
			hard = true
		}
		m.closing.Store(true)
		m.quiet.Store(true)
		m.closeClients()
		if hard {
			m.etcd.Server.HardStop()
		}
		m.etcd.Close()
		close(m.stopped)
	})
}

// Kill stops the member abruptly, as a crash would: no leadership transfer, peers notice
// only by missing heartbeats. For failover tests.
func (m *Member) Kill() {
	m.stopOnce.Do(func() {
		m.closing.Store(true)
		m.quiet.Store(true)
		m.etcd.Server.HardStop()
		m.closeClients()
		m.etcd.Close()
		close(m.stopped)
	})
}

func (m *Member) closeClients() {
	m.ln.Close()
	<-m.serveDone
	m.mu.Lock()
	for c := range m.conns {
		c.close()
	}
	m.mu.Unlock()
}

func (m *Member) serve() {
	defer close(m.serveDone)
	var backoff time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || m.closing.Load() {
				return
			}
			// EMFILE and friends: wait instead of spinning; the listener stays open.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			m.log.Warn("accept on client port", "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		m.accepted.Add(1)
		go m.handle(c)
	}
}

// peekTimeout bounds how long a silent connection may hold a goroutine before it says what
// it is; gRPC and 4lw clients both write at once.
const peekTimeout = 10 * time.Second

func (m *Member) handle(c net.Conn) {
	var head [4]byte
	c.SetReadDeadline(time.Now().Add(peekTimeout))
	n, err := io.ReadFull(c, head[:])
	if err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	if word := string(head[:n]); isFourLetterWord(word) {
		m.received.Add(1)
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, m.answer(word, c))
		m.sent.Add(1)
		// ZooKeeper closes after answering; tools such as nc wait for EOF. `echo ruok | nc`
		// also sends a newline: closing with it unread would reset the connection and could
		// destroy the answer in flight, so half-close and drain first.
		if tc, ok := c.(interface{ CloseWrite() error }); ok {
			tc.CloseWrite()
			c.SetReadDeadline(time.Now().Add(time.Second))
			io.Copy(io.Discard, io.LimitReader(c, 4096))
		}
		c.Close()
		return
	}
	b, err := net.DialTimeout("tcp", m.backend, 2*time.Second)
	if err != nil {
		c.Close()
		return
	}
	pc := &proxyConn{client: c, backend: b, opened: time.Now()}
	m.mu.Lock()
	if m.closing.Load() {
		m.mu.Unlock()
		pc.close()
		return
	}
	m.conns[pc] = struct{}{}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.conns, pc)
		m.mu.Unlock()
		pc.close()
	}()
	if _, err := b.Write(head[:]); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(b, countingReader{c, &pc.recv, &m.received}); done <- struct{}{} }()
	go func() { io.Copy(c, countingReader{b, &pc.sent, &m.sent}); done <- struct{}{} }()
	// gRPC never half-closes, so the first direction to end ends the connection.
	<-done
}

type proxyConn struct {
	client, backend net.Conn
	opened          time.Time
	recv, sent      atomic.Int64
	once            sync.Once
}

func (p *proxyConn) close() {
	p.once.Do(func() {
		p.client.Close()
		p.backend.Close()
	})
}

// countingReader counts reads as "packets", the closest thing a byte proxy has to
// ZooKeeper's packet counters.
type countingReader struct {
	r           io.Reader
	conn, total *atomic.Int64
}

func (cr countingReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	if n > 0 {
		cr.conn.Add(1)
		cr.total.Add(1)
	}
	return n, err
}

func (m *Member) votingMembers() int {
	n := 0
	for _, mb := range m.etcd.Server.Cluster().Members() {
		if !mb.IsLearner {
			n++
		}
	}
	return n
}

// DropClientConnections closes every proxied client connection; clients reconnect, possibly
// to another member. Tests use it to force reconnects; operators get the same effect from a
// restart.
func (m *Member) DropClientConnections() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for c := range m.conns {
		c.close()
	}
}
