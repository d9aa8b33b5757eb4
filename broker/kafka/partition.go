package kafka

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	dlog "github.com/drover/drover/broker/log"
	"github.com/twmb/franz-go/pkg/kerr"
)

// partition is a local replica of one topic partition.
//
// leader/leaderEpoch/replicas/isr come from the partition state in the
// metadata store (applyState); hw is distinct from the log end offset and
// is what consumers may read up to. As leader, follower fetch positions are
// folded in by updateFollower and the HW is the smallest log end of the ISR
// (plus replicas being added to it: a "maximal" ISR, so the HW never counts
// on a set smaller than the one being written); acks=all waits in awaitHW.
// As follower (replica.go) the log is truncated at the epoch boundary and
// then appended with log.AppendFollower, keeping the leader's offsets and
// epochs; the HW follows the leader's.
type partition struct {
	topic   string
	index   int32
	topicID [16]byte
	log     *dlog.Log

	mu          sync.Mutex // serialises appends and guards the fields below
	self        int32
	leader      int32
	leaderEpoch int32
	replicas    []int32
	isr         []int32
	maxMsgBytes int
	minISR      int
	producers   map[int64]*producerState

	isrVersion int64 // store version of the state isr came from
	leaderInc  int64 // LeaderIncarnation of the state
	// Leader side.
	followers  map[int32]*followerState
	pendingISR []int32 // replicas being added to the ISR (write in flight)
	isrBusy    bool    // an ISR write is in flight
	epochStart int64   // log end when this leadership began
	// Follower side.
	needTruncate bool

	hw atomic.Int64

	waitMu  sync.Mutex
	waiters map[chan struct{}]struct{}
}

// producerState remembers the last batches of an idempotent producer on
// this partition, to ack retried duplicates without appending them twice.
type producerState struct {
	epoch   int16
	batches []seqBatch // newest last, at most 5 (max.in.flight for idempotence)
}

type seqBatch struct {
	firstSeq, lastSeq int32
	baseOffset        int64
}

const maxProducerBatches = 5

// followerState is the leader's view of one follower.
type followerState struct {
	leo                int64 // -1: unknown this leadership
	lastFetch          time.Time
	lastFetchLeaderLEO int64
	lastCaughtUp       time.Time
}

func (p *partition) isLeader() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leader == p.self
}

func (p *partition) epoch() int32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.leaderEpoch
}

// rebuildProducer replays a batch header found during log recovery.
func (p *partition) rebuildProducer(h *dlog.BatchHeader) {
	if h.ProducerID < 0 || h.BaseSequence < 0 {
		return
	}
	if p.producers == nil {
		p.producers = map[int64]*producerState{}
	}
	ps := p.producers[h.ProducerID]
	if ps == nil || ps.epoch != h.ProducerEpoch {
		ps = &producerState{epoch: h.ProducerEpoch}
		p.producers[h.ProducerID] = ps
	}
	ps.push(seqBatch{h.BaseSequence, h.LastSequence(), h.BaseOffset})
}

func (ps *producerState) push(b seqBatch) {
	ps.batches = append(ps.batches, b)
	if len(ps.batches) > maxProducerBatches {
		ps.batches = append(ps.batches[:0], ps.batches[len(ps.batches)-maxProducerBatches:]...)
	}
}

// checkSequence applies Kafka's idempotence rules to a batch. dup >= 0 is
// the base offset of an identical batch already in the log.
func (p *partition) checkSequence(h *dlog.BatchHeader) (dup int64, code int16) {
	if h.ProducerID < 0 {
		return -1, 0
	}
	ps := p.producers[h.ProducerID]
	if ps == nil {
		// Unknown producer (new, or its state aged out): any sequence goes.
		return -1, 0
	}
	switch {
	case h.ProducerEpoch < ps.epoch:
		return -1, kerr.InvalidProducerEpoch.Code
	case h.ProducerEpoch > ps.epoch:
		if h.BaseSequence != 0 {
			return -1, kerr.OutOfOrderSequenceNumber.Code
		}
		return -1, 0
	}
	for _, b := range ps.batches {
		if b.firstSeq == h.BaseSequence && b.lastSeq == h.LastSequence() {
			return b.baseOffset, 0
		}
	}
	if n := len(ps.batches); n > 0 {
		want := ps.batches[n-1].lastSeq + 1
		if ps.batches[n-1].lastSeq == 0x7fffffff {
			want = 0
		}
		if h.BaseSequence != want {
			return -1, kerr.OutOfOrderSequenceNumber.Code
		}
	}
	return -1, 0
}

var errNotLeader = errors.New("not leader")

type appendResult struct {
	baseOffset int64
	lastOffset int64
	epoch      int32
	code       int16
	errMsg     string
}

// appendLeader validates and appends a produce request's records.
func (p *partition) appendLeader(raw []byte) appendResult {
	batches, err := dlog.SplitBatches(raw)
	if err != nil || len(batches) == 0 {
		return appendResult{code: codeFor(err, kerr.CorruptMessage.Code), errMsg: errString(err)}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.leader != p.self {
		return appendResult{code: kerr.NotLeaderForPartition.Code}
	}
	hdrs := make([]dlog.BatchHeader, len(batches))
	for i, b := range batches {
		h, err := dlog.ValidateBatch(b, p.maxMsgBytes)
		if err != nil {
			return appendResult{code: codeFor(err, kerr.CorruptMessage.Code), errMsg: err.Error()}
		}
		if h.IsTransactional() {
			return appendResult{code: kerr.TransactionalIDAuthorizationFailed.Code, errMsg: "transactions are not supported"}
		}
		hdrs[i] = h
	}
	// Idempotence is checked per batch; in practice a produce request
	// carries one batch per partition.
	if len(batches) == 1 {
		dup, code := p.checkSequence(&hdrs[0])
		if code != 0 {
			return appendResult{code: code}
		}
		if dup >= 0 {
			return appendResult{baseOffset: dup, lastOffset: dup + int64(hdrs[0].LastOffsetDelta), epoch: p.leaderEpoch}
		}
	}
	base, err := p.log.Append(batches, hdrs, p.leaderEpoch)
	if err != nil {
		return appendResult{code: kerr.KafkaStorageError.Code, errMsg: err.Error()}
	}
	var n int64
	for i := range hdrs {
		h := &hdrs[i]
		n += int64(h.NumRecords)
		if h.ProducerID >= 0 && h.BaseSequence >= 0 {
			if p.producers == nil {
				p.producers = map[int64]*producerState{}
			}
			ps := p.producers[h.ProducerID]
			if ps == nil || ps.epoch != h.ProducerEpoch {
				ps = &producerState{epoch: h.ProducerEpoch}
				p.producers[h.ProducerID] = ps
			}
			ps.push(seqBatch{h.BaseSequence, h.LastSequence(), h.BaseOffset})
		}
	}
	last := hdrs[len(hdrs)-1].LastOffset()
	if !p.advanceHW() && len(p.replicas) > 1 {
		p.notify() // followers long-polling for new data
	}
	return appendResult{baseOffset: base, lastOffset: last, epoch: p.leaderEpoch}
}

// advanceHW moves the high watermark (as leader) to the smallest log end
// offset of the ISR, counting replicas being added. Callers hold mu. It
// reports whether the HW moved (waiters were notified).
func (p *partition) advanceHW() bool {
	if p.leader != p.self {
		return false
	}
	hw := p.log.LogEndOffset()
	check := func(r int32) {
		if r == p.self {
			return
		}
		f := p.followers[r]
		if f == nil || f.leo < 0 {
			hw = -1
		} else if f.leo < hw {
			hw = f.leo
		}
	}
	for _, r := range p.isr {
		check(r)
	}
	for _, r := range p.pendingISR {
		check(r)
	}
	if hw > p.hw.Load() {
		p.hw.Store(hw)
		p.notify()
		return true
	}
	return false
}

// updateFollower records a follower's fetch position (as leader, callers
// hold mu), following Kafka's notion of caught up: a fetch at the log end,
// or at least at the log end of the follower's previous fetch. It reports
// whether the follower should now join the ISR.
func (p *partition) updateFollower(id int32, offset int64, now time.Time) (expand bool) {
	if p.followers == nil {
		p.followers = map[int32]*followerState{}
	}
	f := p.followers[id]
	if f == nil {
		f = &followerState{leo: -1, lastCaughtUp: now}
		p.followers[id] = f
	}
	leo := p.log.LogEndOffset()
	if offset > leo {
		return false
	}
	switch {
	case offset >= leo:
		f.lastCaughtUp = now
	case offset >= f.lastFetchLeaderLEO && !f.lastFetch.IsZero():
		f.lastCaughtUp = f.lastFetch
	}
	f.leo, f.lastFetch, f.lastFetchLeaderLEO = offset, now, leo
	p.advanceHW()
	return !slices.Contains(p.isr, id) && !slices.Contains(p.pendingISR, id) &&
		offset >= p.hw.Load() && offset >= p.epochStart
}

// awaitHW blocks until the high watermark passes offset (acks=all), while
// this broker still leads at epoch. It returns the produce error code.
func (p *partition) awaitHW(ctx context.Context, offset int64, epoch int32) int16 {
	var ch chan struct{}
	for {
		p.mu.Lock()
		lead := p.leader == p.self && p.leaderEpoch == epoch
		hw := p.hw.Load()
		short := len(p.isr) < p.minISR
		p.mu.Unlock()
		switch {
		case !lead:
			return kerr.NotLeaderForPartition.Code
		case hw > offset && short:
			return kerr.NotEnoughReplicasAfterAppend.Code
		case hw > offset:
			return 0
		}
		if ch == nil {
			ch = p.addWaiter()
			defer p.removeWaiter(ch)
			continue // the HW may have moved before we registered
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return kerr.RequestTimedOut.Code
		}
	}
}

func (p *partition) addWaiter() chan struct{} {
	ch := make(chan struct{}, 1)
	p.waitMu.Lock()
	if p.waiters == nil {
		p.waiters = map[chan struct{}]struct{}{}
	}
	p.waiters[ch] = struct{}{}
	p.waitMu.Unlock()
	return ch
}

func (p *partition) addWaiterCh(ch chan struct{}) {
	p.waitMu.Lock()
	if p.waiters == nil {
		p.waiters = map[chan struct{}]struct{}{}
	}
	p.waiters[ch] = struct{}{}
	p.waitMu.Unlock()
}

func (p *partition) removeWaiter(ch chan struct{}) {
	p.waitMu.Lock()
	delete(p.waiters, ch)
	p.waitMu.Unlock()
}

// notify wakes fetches and acks=all producers waiting on this partition.
func (p *partition) notify() {
	p.waitMu.Lock()
	for ch := range p.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	p.waitMu.Unlock()
}

func codeFor(err error, def int16) int16 {
	switch {
	case err == nil:
		return def
	case errors.Is(err, dlog.ErrTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, dlog.ErrInvalidRecord):
		return kerr.InvalidRecord.Code
	case errors.Is(err, dlog.ErrUnsupportedMagic):
		return kerr.UnsupportedForMessageFormat.Code
	case errors.Is(err, dlog.ErrCorrupt):
		return kerr.CorruptMessage.Code
	case errors.Is(err, dlog.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	}
	return def
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
