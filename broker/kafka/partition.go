package kafka

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	dlog "github.com/drover/drover/broker/log"
	"github.com/twmb/franz-go/pkg/kerr"
)

// partition is a local replica of one topic partition.
//
// Replication (issue 7) hooks: leader/leaderEpoch/replicas/isr come from the
// partition state in the metadata store; hw is distinct from the log end
// offset and is what consumers may read up to; advanceHW is where follower
// fetch positions will be folded in (today, with the ISR being just this
// broker, HW = log end after every append); awaitHW is where acks=all waits;
// followers append with log.AppendFollower and truncate with log.TruncateTo.
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
			return appendResult{baseOffset: dup, lastOffset: dup + int64(hdrs[0].LastOffsetDelta)}
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
	p.advanceHW()
	return appendResult{baseOffset: base, lastOffset: last}
}

// advanceHW moves the high watermark to the smallest log end offset of the
// ISR. With replication absent the ISR is this broker alone. Callers hold mu.
func (p *partition) advanceHW() {
	leo := p.log.LogEndOffset()
	if leo > p.hw.Load() {
		p.hw.Store(leo)
		p.notify()
	}
}

// awaitHW blocks until the high watermark passes offset (acks=all). With
// an ISR of one it returns at once; replication makes it wait for followers.
func (p *partition) awaitHW(ctx context.Context, offset int64) error {
	if p.hw.Load() > offset {
		return nil
	}
	ch := p.addWaiter()
	defer p.removeWaiter(ch)
	for p.hw.Load() <= offset {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
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
