package kafka

// Replication, broker side (the controller lives in broker/cluster).
//
// Each local replica follows its partition state (applyState): the leader
// serves produce and fetch, folds follower fetch positions into the HW and
// keeps the ISR (isrLoop: a follower not caught up for
// replica.lag.time.max.ms leaves, one that caught up joins; both written by
// compare-and-set on the state's version, so a deposed leader's write
// fails). A follower fetches from its leader over the Kafka port with
// Fetch v12 carrying ReplicaID = our broker id (one fetcher per leader,
// batching all partitions it leads), after truncating its log at the epoch
// boundary the leader reports through OffsetForLeaderEpoch, so no record
// the new leader lacks survives.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drover/drover/broker/cluster"
	dlog "github.com/drover/drover/broker/log"
	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// applyState brings the replica in line with its partition state and
// returns the broker to fetch from (-1: none).
func (p *partition) applyState(pm cluster.Partition, selfInc int64, now time.Time) int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	leader := pm.Leader
	if leader == p.self && pm.LeaderIncarnation != 0 && selfInc != 0 && pm.LeaderIncarnation != selfInc {
		// Granted to our previous incarnation (we restarted): not ours
		// until the controller elects again.
		leader = -1
	}
	p.replicas = pm.Replicas
	if leader != p.leader || pm.LeaderEpoch != p.leaderEpoch {
		p.leader, p.leaderEpoch = leader, pm.LeaderEpoch
		p.isr, p.isrVersion, p.leaderInc = pm.ISR, pm.Version, pm.LeaderIncarnation
		p.pendingISR, p.followers = nil, nil
		p.needTruncate = false
		switch {
		case leader == p.self:
			p.followers = map[int32]*followerState{}
			for _, r := range pm.Replicas {
				if r != p.self {
					p.followers[r] = &followerState{leo: -1, lastCaughtUp: now}
				}
			}
			p.epochStart = p.log.LogEndOffset()
			p.advanceHW()
		case leader >= 0:
			p.needTruncate = true
		}
		// Produce waiters and fetch long polls look again.
		p.notify()
	} else if pm.Version > p.isrVersion {
		p.isr, p.isrVersion = pm.ISR, pm.Version
		p.advanceHW()
	}
	if p.leader >= 0 && p.leader != p.self {
		return p.leader
	}
	return -1
}

// rebuildProducers replays producer state from the active segment after a
// truncation removed batches it may have counted.
func (p *partition) rebuildProducers() {
	p.producers = nil
	p.log.ScanHeaders(p.log.ActiveBase(), func(h *dlog.BatchHeader) bool {
		p.rebuildProducer(h)
		return true
	})
}

// truncateTo cuts a follower's log (callers hold mu).
func (p *partition) truncateTo(offset int64) error {
	if offset >= p.log.LogEndOffset() {
		return nil
	}
	leo, err := p.log.TruncateTo(offset)
	if err != nil {
		return err
	}
	if p.hw.Load() > leo {
		p.hw.Store(leo)
	}
	p.rebuildProducers()
	return nil
}

// appendFollower appends what a fetch from leader at epoch returned for
// offset, if the replica still follows that leader from there.
func (p *partition) appendFollower(leader, epoch int32, offset int64, data []byte, leaderHW int64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leader != leader || p.leaderEpoch != epoch || p.needTruncate || p.log.LogEndOffset() != offset {
		return nil
	}
	if len(data) > 0 {
		if err := p.log.AppendFollower(data); err != nil {
			return err
		}
		if batches, err := dlog.SplitBatches(data); err == nil {
			for _, b := range batches {
				if h, err := dlog.ParseHeader(b); err == nil {
					p.rebuildProducer(&h)
				}
			}
		}
	}
	hw := min(leaderHW, p.log.LogEndOffset())
	if hw > p.hw.Load() {
		p.hw.Store(hw)
	}
	return nil
}

// replicaManager runs one fetcher per leader this broker follows.
type replicaManager struct {
	s        *Server
	mu       sync.Mutex
	fetchers map[int32]*fetcher
	stopped  bool
	wg       sync.WaitGroup
	paused   atomic.Bool // tests: a follower that stops fetching
}

func newReplicaManager(s *Server) *replicaManager {
	return &replicaManager{s: s, fetchers: map[int32]*fetcher{}}
}

// follow makes p fetch from leader (and from nobody else).
func (rm *replicaManager) follow(p *partition, leader int32) {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	if rm.stopped {
		return
	}
	for id, f := range rm.fetchers {
		if id != leader {
			f.remove(p)
		}
	}
	f := rm.fetchers[leader]
	if f == nil {
		f = &fetcher{rm: rm, leader: leader, parts: map[*partition]struct{}{}, wake: make(chan struct{}, 1), stop: make(chan struct{})}
		rm.fetchers[leader] = f
		rm.wg.Add(1)
		go f.run()
	}
	f.add(p)
}

func (rm *replicaManager) unfollow(p *partition) {
	rm.mu.Lock()
	defer rm.mu.Unlock()
	for _, f := range rm.fetchers {
		f.remove(p)
	}
}

func (rm *replicaManager) stop() {
	rm.mu.Lock()
	rm.stopped = true
	for _, f := range rm.fetchers {
		close(f.stop)
		f.abort()
	}
	rm.mu.Unlock()
	rm.wg.Wait()
}

// setPaused stops (or resumes) all fetching; tests use it to make a
// follower fall behind.
func (rm *replicaManager) setPaused(v bool) {
	rm.paused.Store(v)
	rm.mu.Lock()
	for _, f := range rm.fetchers {
		f.abort()
		f.kick()
	}
	rm.mu.Unlock()
}

type fetcher struct {
	rm     *replicaManager
	leader int32
	wake   chan struct{}
	stop   chan struct{}

	mu       sync.Mutex
	parts    map[*partition]struct{}
	changed  bool
	inflight bool
	conn     *brokerConn
}

func (f *fetcher) add(p *partition) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.parts[p]; ok {
		return
	}
	f.parts[p] = struct{}{}
	f.changed = true
	if f.inflight {
		// Cut the long poll short so the new partition is fetched now.
		f.conn.abort()
	}
	f.kick()
}

func (f *fetcher) remove(p *partition) {
	f.mu.Lock()
	delete(f.parts, p)
	f.mu.Unlock()
}

func (f *fetcher) abort() {
	f.mu.Lock()
	if f.inflight && f.conn != nil {
		f.conn.abort()
	}
	f.mu.Unlock()
}

func (f *fetcher) kick() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *fetcher) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.stop:
		return false
	case <-f.wake:
	case <-t.C:
	}
	return true
}

func (f *fetcher) list() []*partition {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changed = false
	out := make([]*partition, 0, len(f.parts))
	for p := range f.parts {
		out = append(out, p)
	}
	return out
}

func (f *fetcher) dropConn() {
	f.mu.Lock()
	c := f.conn
	f.conn = nil
	f.mu.Unlock()
	if c != nil {
		c.close()
	}
}

func (f *fetcher) run() {
	defer f.rm.wg.Done()
	defer f.dropConn()
	s := f.rm.s
	for {
		select {
		case <-f.stop:
			return
		default:
		}
		parts := f.list()
		if len(parts) == 0 || f.rm.paused.Load() {
			if !f.sleep(time.Second) {
				return
			}
			continue
		}
		f.mu.Lock()
		conn := f.conn
		f.mu.Unlock()
		if conn == nil {
			b, ok := s.store.Snapshot().Broker(f.leader)
			if !ok {
				if !f.sleep(100 * time.Millisecond) {
					return
				}
				continue
			}
			c, err := dialBroker(net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))), "drover-replica-"+strconv.Itoa(int(s.cfg.BrokerID)))
			if err != nil {
				s.log.Debug("replica fetcher dial", "leader", f.leader, "err", err)
				if !f.sleep(100 * time.Millisecond) {
					return
				}
				continue
			}
			f.mu.Lock()
			f.conn = c
			f.mu.Unlock()
			conn = c
		}
		idle, err := f.truncate(conn, parts)
		if err == nil && !idle {
			idle, err = f.fetch(conn, parts)
		}
		if err != nil {
			s.log.Debug("replica fetcher", "leader", f.leader, "err", err)
			f.dropConn()
			idle = true
		}
		if idle && !f.sleep(50*time.Millisecond) {
			return
		}
	}
}

// truncate asks the leader where each partition needing it diverged and
// cuts the local log there (Kafka's KIP-101/279 procedure). idle reports
// that nothing could proceed (the leader is not ready yet).
func (f *fetcher) truncate(conn *brokerConn, parts []*partition) (idle bool, err error) {
	s := f.rm.s
	type ask struct {
		p                 *partition
		epoch, localEpoch int32
	}
	var asks []ask
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.SetVersion(4)
	req.ReplicaID = s.cfg.BrokerID
	byTopic := map[string]int{}
	for _, p := range parts {
		p.mu.Lock()
		if !p.needTruncate || p.leader != f.leader {
			p.mu.Unlock()
			continue
		}
		a := ask{p: p, epoch: p.leaderEpoch, localEpoch: p.log.LatestEpoch()}
		p.mu.Unlock()
		asks = append(asks, a)
		i, ok := byTopic[p.topic]
		if !ok {
			rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
			rt.Topic = p.topic
			req.Topics = append(req.Topics, rt)
			i = len(req.Topics) - 1
			byTopic[p.topic] = i
		}
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = p.index, a.epoch, max(a.localEpoch, 0)
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	if len(asks) == 0 {
		return false, nil
	}
	kresp, err := conn.do(req, 10*time.Second, true)
	if err != nil {
		return true, err
	}
	resp := kresp.(*kmsg.OffsetForLeaderEpochResponse)
	type key struct {
		t string
		p int32
	}
	got := map[key]kmsg.OffsetForLeaderEpochResponseTopicPartition{}
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			got[key{rt.Topic, rp.Partition}] = rp
		}
	}
	progressed := false
	for _, a := range asks {
		rp, ok := got[key{a.p.topic, a.p.index}]
		if !ok || rp.ErrorCode != 0 {
			continue
		}
		p := a.p
		p.mu.Lock()
		if p.leader == f.leader && p.leaderEpoch == a.epoch && p.needTruncate {
			leo := p.log.LogEndOffset()
			target := leo
			switch {
			case a.localEpoch < 0:
				// Nothing written under any epoch here: keep what is below the HW.
				if leo > p.log.LogStartOffset() {
					target = p.hw.Load()
				}
			case rp.LeaderEpoch < 0 || rp.EndOffset < 0:
				target = p.hw.Load()
			case rp.LeaderEpoch == a.localEpoch:
				target = rp.EndOffset
			default:
				_, end := p.log.EndOffsetForEpoch(rp.LeaderEpoch)
				target = min(rp.EndOffset, end)
				if end < 0 {
					target = rp.EndOffset
				}
			}
			if target < leo {
				s.log.Info("truncating diverged log", "topic", p.topic, "partition", p.index, "from", leo, "to", target, "leader", f.leader, "leader_epoch", a.epoch)
				if err := p.truncateTo(target); err != nil {
					s.log.Error("truncate", "topic", p.topic, "partition", p.index, "err", err)
					p.mu.Unlock()
					continue
				}
			}
			p.needTruncate = false
			progressed = true
		}
		p.mu.Unlock()
	}
	return !progressed, nil
}

// fetch runs one replica Fetch for the partitions ready to fetch.
func (f *fetcher) fetch(conn *brokerConn, parts []*partition) (idle bool, err error) {
	s := f.rm.s
	type ask struct {
		p      *partition
		epoch  int32
		offset int64
	}
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(12)
	req.ReplicaID = s.cfg.BrokerID
	req.MaxWaitMillis = 500
	req.MinBytes = 1
	req.MaxBytes = 32 << 20
	req.SessionEpoch = -1
	asks := map[string]map[int32]ask{}
	byTopic := map[string]int{}
	for _, p := range parts {
		p.mu.Lock()
		if p.needTruncate || p.leader != f.leader {
			p.mu.Unlock()
			continue
		}
		a := ask{p: p, epoch: p.leaderEpoch, offset: p.log.LogEndOffset()}
		p.mu.Unlock()
		if asks[p.topic] == nil {
			asks[p.topic] = map[int32]ask{}
		}
		asks[p.topic][p.index] = a
		i, ok := byTopic[p.topic]
		if !ok {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = p.topic
			req.Topics = append(req.Topics, rt)
			i = len(req.Topics) - 1
			byTopic[p.topic] = i
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.FetchOffset = p.index, a.epoch, a.offset
		rp.LastFetchedEpoch, rp.LogStartOffset = -1, -1
		rp.PartitionMaxBytes = 4 << 20
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	if len(req.Topics) == 0 {
		return true, nil
	}
	f.mu.Lock()
	if f.changed || f.rm.paused.Load() {
		f.mu.Unlock()
		return false, nil
	}
	conn.setDeadline(time.Now().Add(time.Duration(req.MaxWaitMillis)*time.Millisecond + 10*time.Second))
	f.inflight = true
	f.mu.Unlock()
	kresp, err := conn.do(req, 0, false)
	f.mu.Lock()
	f.inflight = false
	f.mu.Unlock()
	if err != nil {
		return true, err
	}
	resp := kresp.(*kmsg.FetchResponse)
	if resp.ErrorCode != 0 {
		return true, nil
	}
	got := 0
	errs := 0
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			a, ok := asks[rt.Topic][rp.Partition]
			if !ok {
				continue
			}
			p := a.p
			switch rp.ErrorCode {
			case 0:
				if err := p.appendFollower(f.leader, a.epoch, a.offset, rp.RecordBatches, rp.HighWatermark); err != nil {
					s.log.Warn("follower append", "topic", p.topic, "partition", p.index, "err", err)
					p.mu.Lock()
					p.needTruncate = true
					p.mu.Unlock()
					errs++
				}
				got += len(rp.RecordBatches)
			case kerr.OffsetOutOfRange.Code:
				p.mu.Lock()
				if p.leader == f.leader && p.leaderEpoch == a.epoch {
					if rp.LogStartOffset >= 0 && a.offset < rp.LogStartOffset {
						s.log.Info("follower behind leader log start: resetting", "topic", p.topic, "partition", p.index, "to", rp.LogStartOffset)
						if err := p.log.Reset(rp.LogStartOffset); err == nil {
							p.hw.Store(rp.LogStartOffset)
							p.producers = nil
						}
					} else {
						p.needTruncate = true
					}
				}
				p.mu.Unlock()
			default:
				errs++
			}
		}
	}
	return got == 0 && errs > 0, nil
}

// brokerConn is a minimal Kafka client connection for broker-to-broker requests.
type brokerConn struct {
	c    net.Conn
	r    *bufio.Reader
	corr int32
	fmt  *kmsg.RequestFormatter
	buf  []byte
	rbuf []byte
}

func dialBroker(addr, clientID string) (*brokerConn, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return &brokerConn{c: c, r: bufio.NewReaderSize(c, 64<<10), fmt: kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID))}, nil
}

func (bc *brokerConn) setDeadline(t time.Time) { bc.c.SetDeadline(t) }
func (bc *brokerConn) abort()                  { bc.c.SetDeadline(time.Now()) }
func (bc *brokerConn) close()                  { bc.c.Close() }

// do sends req and reads its response (sets a deadline of timeout when setDL).
func (bc *brokerConn) do(req kmsg.Request, timeout time.Duration, setDL bool) (kmsg.Response, error) {
	if setDL {
		bc.c.SetDeadline(time.Now().Add(timeout))
	}
	bc.corr++
	bc.buf = bc.fmt.AppendRequest(bc.buf[:0], req, bc.corr)
	if _, err := bc.c.Write(bc.buf); err != nil {
		return nil, err
	}
	var sb [4]byte
	if _, err := io.ReadFull(bc.r, sb[:]); err != nil {
		return nil, err
	}
	size := int32(binary.BigEndian.Uint32(sb[:]))
	if size < 4 || size > 1<<28 {
		return nil, fmt.Errorf("bad response size %d", size)
	}
	// The buffer is reused: callers consume a response (the follower
	// appends the fetched records) before the next request.
	if cap(bc.rbuf) < int(size) {
		bc.rbuf = make([]byte, size)
	}
	body := bc.rbuf[:size]
	if _, err := io.ReadFull(bc.r, body); err != nil {
		return nil, err
	}
	if corr := int32(binary.BigEndian.Uint32(body)); corr != bc.corr {
		return nil, fmt.Errorf("correlation id %d, want %d", corr, bc.corr)
	}
	resp := req.ResponseKind()
	b := body[4:]
	if resp.IsFlexible() && resp.Key() != 18 {
		rd := kbin.Reader{Src: b}
		if err := skipTags(&rd); err != nil {
			return nil, err
		}
		b = rd.Src
	}
	if err := resp.ReadFrom(b); err != nil {
		return nil, fmt.Errorf("decode %s response: %w", kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

// isrLoop is the leader's ISR maintenance.
func (s *Server) isrLoop() {
	defer s.bg.Done()
	every := min(max(s.cfg.ReplicaLagTimeMax/4, 50*time.Millisecond), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.isrKick:
		case <-s.closing:
			return
		}
		for _, p := range s.topics.all() {
			s.maybeAlterISR(p)
		}
	}
}

func (s *Server) kickISR() {
	select {
	case s.isrKick <- struct{}{}:
	default:
	}
}

// maybeAlterISR shrinks the ISR of lagging followers and adds caught-up ones.
func (s *Server) maybeAlterISR(p *partition) {
	lag := s.cfg.ReplicaLagTimeMax
	p.mu.Lock()
	if p.leader != p.self || p.isrBusy {
		p.mu.Unlock()
		return
	}
	now := time.Now()
	snap := s.store.Snapshot()
	var next, added, removed []int32
	for _, r := range p.isr {
		if f := p.followers[r]; r != p.self && f != nil && now.Sub(f.lastCaughtUp) > lag {
			removed = append(removed, r)
			continue
		}
		next = append(next, r)
	}
	for _, r := range p.replicas {
		f := p.followers[r]
		if r == p.self || f == nil || slices.Contains(p.isr, r) {
			continue
		}
		if f.leo >= 0 && f.leo >= p.hw.Load() && f.leo >= p.epochStart && now.Sub(f.lastCaughtUp) <= lag && snap.Live(r) {
			added = append(added, r)
			next = append(next, r)
		}
	}
	if len(added) == 0 && len(removed) == 0 {
		p.mu.Unlock()
		return
	}
	p.pendingISR = added
	p.isrBusy = true
	st := cluster.PartitionState{Leader: p.self, LeaderEpoch: p.leaderEpoch, ISR: next, LeaderIncarnation: p.leaderInc}
	ver, epoch := p.isrVersion, p.leaderEpoch
	p.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	nv, err := s.store.AlterPartition(ctx, p.topic, p.index, st, ver)
	cancel()

	p.mu.Lock()
	p.isrBusy = false
	p.pendingISR = nil
	if err == nil && p.leader == p.self && p.leaderEpoch == epoch && nv > p.isrVersion {
		p.isr, p.isrVersion = next, nv
	}
	p.advanceHW()
	p.mu.Unlock()
	switch {
	case err == nil:
		s.log.Info("ISR changed", "topic", p.topic, "partition", p.index, "isr", next, "added", added, "removed", removed)
	case errors.Is(err, cluster.ErrStaleState):
		s.log.Debug("ISR change lost a race", "topic", p.topic, "partition", p.index)
	default:
		s.log.Warn("ISR change", "topic", p.topic, "partition", p.index, "err", err)
	}
}
