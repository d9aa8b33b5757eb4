// Package kafka is drover-broker's Kafka wire protocol server: connection
// handling, one file per API (NN_name.go, NN = api key), partitions,
// topics, consumer groups and idempotent producers.
package kafka

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/drover/drover/broker/cluster"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Config configures a Server. Zero values take Kafka's defaults (see withDefaults).
type Config struct {
	BrokerID int32
	// Listen is the host:port to listen on (":0" picks a port).
	Listen string
	// Advertised is the host:port clients are told to use; default: the listen address.
	Advertised string
	Rack       string
	// LogDir holds partition directories and the broker's own state files.
	LogDir string

	// Store is the metadata backend; nil means single-node mode (cluster.Local in LogDir).
	Store cluster.Store

	NumPartitions            int32
	DefaultReplicationFactor int16
	MinInsyncReplicas        int
	AutoCreateTopics         *bool
	LogRetentionMs           int64 // -1 forever
	LogRetentionBytes        int64 // -1 unlimited
	LogSegmentBytes          int64
	LogSegmentMs             int64
	LogRetentionCheck        time.Duration
	MessageMaxBytes          int32
	MaxRequestBytes          int32 // socket.request.max.bytes
	// GroupInitialRebalanceDelay delays the first rebalance of an empty group
	// so more members can join (group.initial.rebalance.delay.ms, default 3s).
	GroupInitialRebalanceDelay *time.Duration
	GroupMinSessionTimeout     time.Duration
	GroupMaxSessionTimeout     time.Duration

	// ReplicaLagTimeMax is replica.lag.time.max.ms: a follower not caught
	// up for this long leaves the ISR (default 10s; Kafka's is 30s).
	ReplicaLagTimeMax time.Duration
	// UncleanLeaderElection is unclean.leader.election.enable's default.
	UncleanLeaderElection bool
	// AutoLeaderRebalance (auto.leader.rebalance.enable, default on) and
	// LeaderImbalanceCheckInterval (leader.imbalance.check.interval.seconds,
	// default 10s): the controller moves leadership back to preferred replicas.
	AutoLeaderRebalance          *bool
	LeaderImbalanceCheckInterval time.Duration
	// ControlledShutdown (controlled.shutdown.enable, default on) moves
	// leadership away before stopping, waiting at most
	// ControlledShutdownTimeout (controlled.shutdown.timeout.ms, default 30s).
	ControlledShutdown        *bool
	ControlledShutdownTimeout time.Duration

	Logger *slog.Logger
}

func (c *Config) withDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:9092"
	}
	if c.NumPartitions <= 0 {
		c.NumPartitions = 1
	}
	if c.DefaultReplicationFactor <= 0 {
		c.DefaultReplicationFactor = 1
	}
	if c.MinInsyncReplicas <= 0 {
		c.MinInsyncReplicas = 1
	}
	if c.AutoCreateTopics == nil {
		t := true
		c.AutoCreateTopics = &t
	}
	if c.LogRetentionMs == 0 {
		c.LogRetentionMs = 7 * 24 * 3600 * 1000
	}
	if c.LogRetentionBytes == 0 {
		c.LogRetentionBytes = -1
	}
	if c.LogSegmentBytes <= 0 {
		c.LogSegmentBytes = 1 << 30
	}
	if c.LogSegmentMs <= 0 {
		c.LogSegmentMs = 7 * 24 * 3600 * 1000
	}
	if c.LogRetentionCheck <= 0 {
		c.LogRetentionCheck = 5 * time.Minute
	}
	if c.MessageMaxBytes <= 0 {
		c.MessageMaxBytes = 1048588
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = 100 << 20
	}
	if c.GroupInitialRebalanceDelay == nil {
		d := 3 * time.Second
		c.GroupInitialRebalanceDelay = &d
	}
	if c.GroupMinSessionTimeout <= 0 {
		c.GroupMinSessionTimeout = 6 * time.Second
	}
	if c.GroupMaxSessionTimeout <= 0 {
		c.GroupMaxSessionTimeout = 30 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if c.ReplicaLagTimeMax <= 0 {
		c.ReplicaLagTimeMax = 10 * time.Second
	}
	if c.AutoLeaderRebalance == nil {
		t := true
		c.AutoLeaderRebalance = &t
	}
	if c.LeaderImbalanceCheckInterval <= 0 {
		c.LeaderImbalanceCheckInterval = 10 * time.Second
	}
	if c.ControlledShutdown == nil {
		t := true
		c.ControlledShutdown = &t
	}
	if c.ControlledShutdownTimeout <= 0 {
		c.ControlledShutdownTimeout = 30 * time.Second
	}
}

// Server is one broker.
type Server struct {
	cfg   Config
	log   *slog.Logger
	store cluster.Store
	ln    net.Listener

	topics   *topicManager
	replicas *replicaManager
	isrKick  chan struct{}
	coord    *cluster.Coord // nil in single-node mode
	ctlStop  context.CancelFunc
	ctlDone  chan struct{}
	groups   *groupCoordinator
	pids     *pidAllocator
	metrics  metrics

	mu      sync.Mutex
	conns   map[*clientConn]struct{}
	closing chan struct{}
	wg      sync.WaitGroup // connection goroutines
	bg      sync.WaitGroup // background loops
	stopped bool
}

// New prepares a server: opens the metadata store and the partition logs.
// Start begins serving.
func New(cfg Config) (*Server, error) {
	cfg.withDefaults()
	if cfg.LogDir == "" {
		return nil, errors.New("log dir not set")
	}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, conns: map[*clientConn]struct{}{}, closing: make(chan struct{})}
	s.store = cfg.Store
	if s.store == nil {
		st, err := cluster.OpenLocal(cfg.LogDir)
		if err != nil {
			return nil, err
		}
		s.store = st
	}
	if err := writeMetaProperties(cfg.LogDir, cfg.BrokerID, s.store.Snapshot().ClusterID); err != nil {
		return nil, err
	}
	s.coord, _ = s.store.(*cluster.Coord)
	s.pids = &pidAllocator{store: s.store}
	s.isrKick = make(chan struct{}, 1)
	s.replicas = newReplicaManager(s)
	s.topics = newTopicManager(s)
	var err error
	if s.groups, err = newGroupCoordinator(s); err != nil {
		return nil, err
	}
	return s, nil
}

// writeMetaProperties records broker.id and cluster.id like Kafka, refusing
// a log dir that belongs to another broker id.
func writeMetaProperties(dir string, id int32, clusterID string) error {
	p := filepath.Join(dir, "meta.properties")
	if data, err := os.ReadFile(p); err == nil {
		props := map[string]string{}
		for _, line := range splitLines(string(data)) {
			if k, v, ok := cutProp(line); ok {
				props[k] = v
			}
		}
		if v, ok := props["broker.id"]; ok && v != strconv.Itoa(int(id)) {
			return fmt.Errorf("log dir %s belongs to broker.id %s, not %d", dir, v, id)
		}
	}
	content := fmt.Sprintf("#drover-broker\nversion=0\nbroker.id=%d\ncluster.id=%s\n", id, clusterID)
	if err := os.WriteFile(p+".tmp", []byte(content), 0o644); err != nil {
		return fmt.Errorf("write meta.properties: %w", err)
	}
	return os.Rename(p+".tmp", p)
}

// Start listens, registers with the metadata store and serves until Stop.
func (s *Server) Start(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s.ln = ln
	host, port, err := s.advertisedHostPort()
	if err != nil {
		ln.Close()
		return err
	}
	b := cluster.Broker{ID: s.cfg.BrokerID, Host: host, Port: port, Rack: s.cfg.Rack, Version: 5,
		Endpoints: []string{"PLAINTEXT://" + net.JoinHostPort(host, strconv.Itoa(int(port)))},
		Timestamp: strconv.FormatInt(time.Now().UnixMilli(), 10)}
	if err := s.store.Register(ctx, b); err != nil {
		ln.Close()
		return fmt.Errorf("register broker: %w", err)
	}
	s.topics.reconcile()
	s.bg.Add(4)
	go s.watchMetadata()
	go s.retentionLoop()
	go s.groups.expireLoop()
	go s.isrLoop()
	if s.coord != nil {
		cctx, cancel := context.WithCancel(context.Background())
		s.ctlStop, s.ctlDone = cancel, make(chan struct{})
		go func() {
			defer close(s.ctlDone)
			s.coord.RunController(cctx, cluster.ControllerConfig{Unclean: s.cfg.UncleanLeaderElection,
				Rebalance: *s.cfg.AutoLeaderRebalance, RebalanceInterval: s.cfg.LeaderImbalanceCheckInterval, Logger: s.log})
		}()
	}
	s.wg.Add(1)
	go s.acceptLoop()
	s.log.Info("listening", "addr", ln.Addr().String(), "advertised", net.JoinHostPort(host, strconv.Itoa(int(port))), "broker.id", s.cfg.BrokerID)
	return nil
}

func (s *Server) advertisedHostPort() (string, int32, error) {
	adv := s.cfg.Advertised
	if adv == "" {
		adv = s.ln.Addr().String()
	}
	host, ps, err := net.SplitHostPort(adv)
	if err != nil {
		return "", 0, fmt.Errorf("advertised address %q: %w", adv, err)
	}
	port, _ := strconv.Atoi(ps)
	if port == 0 {
		_, lp, _ := net.SplitHostPort(s.ln.Addr().String())
		port, _ = strconv.Atoi(lp)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		if h, err := os.Hostname(); err == nil {
			host = h
		}
	}
	return host, int32(port), nil
}

// Addr is the listening address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Store is the metadata backend in use.
func (s *Server) Store() cluster.Store { return s.store }

// incarnation is this broker's registration incarnation (0 in single-node mode).
func (s *Server) incarnation() int64 {
	if s.coord == nil {
		return 0
	}
	return s.coord.Incarnation()
}

// controlledShutdown hands leadership over before stopping: mark this
// broker as shutting down, then wait (bounded) until the controller has
// moved every leadership it can and taken us out of the ISRs. Clients see
// NOT_LEADER_OR_FOLLOWER and move on; acks=all producers lose nothing.
func (s *Server) controlledShutdown() {
	if s.coord == nil || !*s.cfg.ControlledShutdown {
		return
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ControlledShutdownTimeout)
	defer cancel()
	// A coordinator that cannot take this one write within a few seconds has no quorum, so there
	// is no controller to move leadership either (e.g. a whole fleet halting at once): stop
	// instead of holding the shutdown for the full timeout.
	bctx, bcancel := context.WithTimeout(ctx, min(5*time.Second, s.cfg.ControlledShutdownTimeout))
	err := s.coord.BeginShutdown(bctx)
	bcancel()
	if err != nil {
		s.log.Warn("controlled shutdown skipped: the coordinator did not take the shutdown mark", "err", err)
		return
	}
	for {
		ch := s.store.Changed()
		snap := s.store.Snapshot()
		if snap.ControlledShutdownDone(s.cfg.BrokerID) {
			s.log.Info("controlled shutdown: leadership moved", "took", time.Since(start))
			return
		}
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			s.log.Warn("controlled shutdown timed out; stopping anyway", "after", time.Since(start))
			return
		}
	}
}

// Stop shuts down gracefully: hand leadership over (controlled shutdown),
// stop accepting, let in-flight requests finish (long-poll fetches return
// early), deregister, close logs.
func (s *Server) Stop() error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	s.controlledShutdown()
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	close(s.closing)
	if s.ln != nil {
		s.ln.Close()
	}
	for cc := range s.conns {
		// Unblocks the read of the next request; a request being handled
		// finishes and its response is written first.
		cc.conn.SetReadDeadline(time.Now())
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.mu.Lock()
		for cc := range s.conns {
			cc.conn.Close()
		}
		s.mu.Unlock()
		<-done
	}
	s.bg.Wait()
	s.replicas.stop()
	if s.ctlStop != nil {
		s.ctlStop()
		<-s.ctlDone
	}
	err := s.store.Close()
	s.groups.close()
	s.topics.close()
	os.WriteFile(filepath.Join(s.cfg.LogDir, cleanShutdownFile), nil, 0o644)
	return err
}

func (s *Server) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

const cleanShutdownFile = ".drover-clean-shutdown"

func (s *Server) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if s.isClosing() {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			s.log.Warn("accept", "err", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		cc := &clientConn{s: s, conn: c}
		s.mu.Lock()
		if s.stopped {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[cc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		s.metrics.connections.Add(1)
		go cc.serve()
	}
}

type clientConn struct {
	s        *Server
	conn     net.Conn
	clientID string
	host     string
	connBufs // pooled buffers of the request in flight (fetch_write.go)
}

// serve runs one connection: requests are handled one at a time in arrival
// order (as Kafka does), so responses need no reordering.
func (cc *clientConn) serve() {
	s := cc.s
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic serving connection", "remote", cc.conn.RemoteAddr().String(), "panic", r, "stack", string(debug.Stack()))
		}
		cc.conn.Close()
		s.mu.Lock()
		delete(s.conns, cc)
		s.mu.Unlock()
		s.metrics.connections.Add(-1)
		s.wg.Done()
	}()
	if h, _, err := net.SplitHostPort(cc.conn.RemoteAddr().String()); err == nil {
		cc.host = "/" + h
	}
	r := bufio.NewReaderSize(cc.conn, 32<<10)
	w := bufio.NewWriterSize(cc.conn, 32<<10)
	var sizeBuf [4]byte
	var out []byte
	for {
		if s.isClosing() {
			return
		}
		if _, err := io.ReadFull(r, sizeBuf[:]); err != nil {
			return
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		// Refuse oversized (or negative) frames before allocating anything.
		if size < 8 || size > s.cfg.MaxRequestBytes {
			s.log.Warn("closing connection: bad frame size", "remote", cc.conn.RemoteAddr().String(), "size", size, "max", s.cfg.MaxRequestBytes)
			return
		}
		body, err := readFrameBody(r, int(size))
		if err != nil {
			return
		}
		s.metrics.bytesIn.Add(int64(size) + 4)
		resp, corr, err := cc.handle(body)
		if err != nil {
			s.log.Debug("closing connection", "remote", cc.conn.RemoteAddr().String(), "err", err)
			return
		}
		recycleFrame(body)
		if resp == nil {
			continue
		}
		if err := cc.writeResponse(w, &out, resp, corr, r.Buffered() == 0); err != nil {
			return
		}
	}
}

// eagerBodyBytes: frames up to this size are allocated in one go when their
// size prefix arrives; bigger ones grow with the bytes actually received.
const eagerBodyBytes = 1 << 20

// readBody reads a size-byte frame body. A 4-byte size prefix alone must not
// make us allocate up to socket.request.max.bytes (100 MiB) per connection,
// so beyond eagerBodyBytes the buffer doubles as data comes in: memory
// follows what the client really sent (at most ~2x for the copies).
func readBody(r io.Reader, size int) ([]byte, error) {
	if size <= eagerBodyBytes {
		body := make([]byte, size)
		_, err := io.ReadFull(r, body)
		return body, err
	}
	body := make([]byte, 0, eagerBodyBytes)
	for len(body) < size {
		if len(body) == cap(body) {
			body = append(body, make([]byte, min(cap(body), size-len(body)))...)[:len(body)]
		}
		n, err := io.ReadFull(r, body[len(body):min(cap(body), size)])
		body = body[:len(body)+n]
		if err != nil {
			return nil, err
		}
	}
	return body, nil
}

// decodeRequest parses a request frame body. It is the fuzzed entry point.
func decodeRequest(body []byte) (kmsg.Request, int32, string, error) {
	rd := kbin.Reader{Src: body}
	key := rd.Int16()
	version := rd.Int16()
	corr := rd.Int32()
	clientID := rd.NullableString()
	if err := rd.Complete(); err != nil && !rd.Ok() {
		return nil, corr, "", fmt.Errorf("short request header")
	}
	var cid string
	if clientID != nil {
		cid = *clientID
	}
	if key == 18 {
		if h, ok := registry[18]; ok && version > h.max {
			return &futureApiVersions{version: version}, corr, cid, nil
		}
	}
	// Only keys and versions we serve are decoded at all: anything else
	// closes the connection before kmsg sees the body.
	h, ok := registry[key]
	if !ok || version < h.min || version > h.max {
		return nil, corr, cid, fmt.Errorf("api key %d version %d not supported", key, version)
	}
	req := kmsg.RequestForKey(key)
	if req == nil || version > req.MaxVersion() {
		return nil, corr, cid, fmt.Errorf("api key %d version %d not decodable", key, version)
	}
	req.SetVersion(version)
	if req.IsFlexible() {
		// Not kmsg.SkipTags: it keeps looping over a bogus tag count
		// (billions of iterations) after the reader has gone bad.
		if err := skipTags(&rd); err != nil {
			return nil, corr, cid, err
		}
	}
	// kmsg trusts the tag and array counts in the body (see decode_guard.go):
	// check them against the bytes actually there before it sees them.
	if err := guardDecode(key, version, req.IsFlexible(), rd.Src); err != nil {
		return nil, corr, cid, fmt.Errorf("decode key %d v%d: %w", key, version, err)
	}
	if err := req.ReadFrom(rd.Src); err != nil {
		return nil, corr, cid, fmt.Errorf("decode key %d v%d: %w", key, version, err)
	}
	return req, corr, cid, nil
}

func skipTags(rd *kbin.Reader) error {
	n := rd.Uvarint()
	if !rd.Ok() || int(n) > len(rd.Src) {
		return fmt.Errorf("bad header tags")
	}
	for i := uint32(0); i < n; i++ {
		rd.Uvarint()
		size := rd.Uvarint()
		if !rd.Ok() || int(size) > len(rd.Src) {
			return fmt.Errorf("bad header tags")
		}
		rd.Span(int(size))
	}
	return nil
}

// futureApiVersions stands for an ApiVersions request newer than we speak.
type futureApiVersions struct {
	kmsg.ApiVersionsRequest
	version int16
}

func (cc *clientConn) handle(body []byte) (kmsg.Response, int32, error) {
	req, corr, cid, err := decodeRequest(body)
	if err != nil {
		return nil, corr, err
	}
	cc.clientID = cid
	if _, ok := req.(*futureApiVersions); ok {
		cc.s.metrics.countRequest(18)
		return unsupportedApiVersions(), corr, nil
	}
	h, ok := registry[req.Key()]
	if !ok || req.GetVersion() < h.min || req.GetVersion() > h.max {
		return nil, corr, fmt.Errorf("api key %d v%d not supported", req.Key(), req.GetVersion())
	}
	cc.s.metrics.countRequest(req.Key())
	resp := h.fn(cc.s, cc, req)
	return resp, corr, nil
}

// appendResponse frames a response: size, correlation id, header tags when
// flexible (never for ApiVersions), body.
func appendResponse(dst []byte, resp kmsg.Response, corr int32) []byte {
	dst = append(dst, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[4:], uint32(corr))
	if resp.IsFlexible() && resp.Key() != 18 {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst[:4], uint32(len(dst)-4))
	return dst
}

func (s *Server) watchMetadata() {
	defer s.bg.Done()
	for {
		ch := s.store.Changed()
		s.topics.reconcile()
		select {
		case <-ch:
		case <-s.closing:
			return
		}
	}
}

func (s *Server) retentionLoop() {
	defer s.bg.Done()
	t := time.NewTicker(s.cfg.LogRetentionCheck)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			s.topics.enforceRetention()
		case <-s.closing:
			return
		}
	}
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

func cutProp(line string) (string, string, bool) {
	for i := 0; i < len(line); i++ {
		if line[i] == '=' {
			return line[:i], line[i+1:], true
		}
	}
	return "", "", false
}

// kill stops the broker the way kill -9 would look to the rest of the
// cluster (tests): connections drop at once, nothing is handed over, the
// registration is not revoked but left to expire, logs are not marked clean.
func (s *Server) kill() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return
	}
	s.stopped = true
	close(s.closing)
	if s.ln != nil {
		s.ln.Close()
	}
	for cc := range s.conns {
		cc.conn.Close()
	}
	s.mu.Unlock()
	s.replicas.stop()
	if s.coord != nil {
		s.coord.Abandon()
	}
	if s.ctlStop != nil {
		s.ctlStop()
		<-s.ctlDone
	}
	s.wg.Wait()
	s.bg.Wait()
	s.groups.close()
	s.topics.close()
}
