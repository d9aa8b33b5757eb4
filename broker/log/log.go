// Package log is drover's segmented on-disk partition log.
//
// Layout, as Kafka operators know it: <log.dir>/<topic>-<partition>/ holds
// %020d.log segments of record batches stored verbatim (the broker only
// stamps base offset bytes 0-7 and the partition leader epoch 12-15), a
// sparse .index and a .timeindex per segment, and leader-epoch-checkpoint.
//
// Writes are not fsynced per append (Kafka relies on replication for
// durability); segments are synced when they roll and on Close. Open
// recovers the active segment: every batch is CRC-checked and a torn tail
// is truncated.
//
// The log knows nothing of high watermarks: readers pass the offset they may
// read up to (the HW for consumers, the log end for followers).
package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config holds the per-topic settings the log applies.
type Config struct {
	SegmentBytes       int64 // segment.bytes
	SegmentMs          int64 // segment.ms
	RetentionMs        int64 // retention.ms, -1 = forever
	RetentionBytes     int64 // retention.bytes, -1 = unlimited
	IndexIntervalBytes int64 // index.interval.bytes
}

// DefaultConfig returns Kafka's defaults.
func DefaultConfig() Config {
	return Config{SegmentBytes: 1 << 30, SegmentMs: 7 * 24 * 3600 * 1000, RetentionMs: 7 * 24 * 3600 * 1000, RetentionBytes: -1, IndexIntervalBytes: 4096}
}

// Log is one partition's log.
type Log struct {
	dir string

	mu       sync.RWMutex
	cfg      Config
	segs     []*segment
	logStart int64
	epochs   *EpochCache
	closed   bool
}

// OpenOptions tune Open.
type OpenOptions struct {
	// Verify CRC-checks the active segment while recovering (set after an unclean shutdown).
	Verify bool
	// OnBatch sees every batch header of the active segment in order (to
	// rebuild producer state).
	OnBatch func(*BatchHeader)
}

// Open opens or creates the log in dir.
func Open(dir string, cfg Config, opt OpenOptions) (*Log, error) {
	if cfg.IndexIntervalBytes <= 0 {
		cfg.IndexIntervalBytes = 4096
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create log dir: %w", err)
	}
	l := &Log{dir: dir, cfg: cfg}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read log dir: %w", err)
	}
	var bases []int64
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, ".deleted") {
			os.Remove(filepath.Join(dir, name))
			continue
		}
		if !strings.HasSuffix(name, ".log") {
			continue
		}
		b, err := strconv.ParseInt(strings.TrimSuffix(name, ".log"), 10, 64)
		if err != nil {
			continue
		}
		bases = append(bases, b)
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	for i, b := range bases {
		last := i == len(bases)-1
		var onBatch func(*BatchHeader)
		if last {
			onBatch = opt.OnBatch
		}
		s, err := openSegment(dir, b, last, opt.Verify, cfg.IndexIntervalBytes, onBatch)
		if err != nil {
			l.closeSegs()
			return nil, fmt.Errorf("open segment %d of %s: %w", b, dir, err)
		}
		l.segs = append(l.segs, s)
	}
	if len(l.segs) == 0 {
		s, err := createSegment(dir, 0)
		if err != nil {
			return nil, err
		}
		l.segs = append(l.segs, s)
	}
	l.logStart = l.segs[0].base
	if data, err := os.ReadFile(filepath.Join(dir, "log-start-offset")); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64); err == nil && v > l.logStart && v <= l.leo() {
			l.logStart = v
		}
	}
	if l.epochs, err = loadEpochCache(dir); err != nil {
		l.closeSegs()
		return nil, err
	}
	l.epochs.truncateFromEnd(l.leo())
	return l, nil
}

func (l *Log) active() *segment { return l.segs[len(l.segs)-1] }
func (l *Log) leo() int64       { return l.active().next }

// Dir is the partition directory.
func (l *Log) Dir() string { return l.dir }

// LogEndOffset is the offset the next appended record gets.
func (l *Log) LogEndOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.leo()
}

// LogStartOffset is the first offset still in the log.
func (l *Log) LogStartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.logStart
}

// Size is the total bytes of all segments.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, s := range l.segs {
		n += s.size
	}
	return n
}

// SetConfig replaces the topic settings (a config change).
func (l *Log) SetConfig(cfg Config) {
	l.mu.Lock()
	if cfg.IndexIntervalBytes <= 0 {
		cfg.IndexIntervalBytes = 4096
	}
	l.cfg = cfg
	l.mu.Unlock()
}

var errClosed = errors.New("log closed")

// Append writes validated client batches as leader: each gets the next
// offset and the leader epoch stamped into its header (the slices are
// modified in place). It returns the base offset of the first batch.
func (l *Log) Append(batches [][]byte, hdrs []BatchHeader, epoch int32) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, errClosed
	}
	first := l.leo()
	if err := l.epochs.assign(epoch, first); err != nil {
		return 0, err
	}
	for i, b := range batches {
		h := &hdrs[i]
		h.BaseOffset = l.leo()
		h.PartitionLeaderEpoch = epoch
		stamp(b, h.BaseOffset, epoch)
		if err := l.write(b, h); err != nil {
			return 0, err
		}
	}
	return first, nil
}

// AppendFollower appends batches fetched from the leader, keeping their
// offsets and leader epochs. The first batch must start at the log end.
func (l *Log) AppendFollower(records []byte) error {
	batches, err := SplitBatches(records)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errClosed
	}
	for _, b := range batches {
		h, err := ParseHeader(b)
		if err != nil {
			return err
		}
		if h.BaseOffset < l.leo() {
			return fmt.Errorf("follower append at %d below log end %d", h.BaseOffset, l.leo())
		}
		if !CheckCRC(b) {
			return ErrCorrupt
		}
		if err := l.epochs.assign(h.PartitionLeaderEpoch, h.BaseOffset); err != nil {
			return err
		}
		if err := l.write(b, &h); err != nil {
			return err
		}
	}
	return nil
}

func (l *Log) write(b []byte, h *BatchHeader) error {
	s := l.active()
	if s.size > 0 && (s.size+int64(len(b)) > l.cfg.SegmentBytes || (l.cfg.SegmentMs > 0 && time.Since(s.created) > time.Duration(l.cfg.SegmentMs)*time.Millisecond)) {
		if err := l.roll(h.BaseOffset); err != nil {
			return err
		}
		s = l.active()
	}
	if _, err := s.f.WriteAt(b, s.size); err != nil {
		// A partial write leaves garbage past s.size; cut it so the next
		// append and recovery see a clean end.
		s.f.Truncate(s.size)
		return fmt.Errorf("append: %w", err)
	}
	pos := s.size
	s.size += int64(len(b))
	s.track(h, pos, l.cfg.IndexIntervalBytes)
	return nil
}

func (l *Log) roll(base int64) error {
	old := l.active()
	if err := old.sync(); err != nil {
		return fmt.Errorf("sync segment: %w", err)
	}
	s, err := createSegment(l.dir, base)
	if err != nil {
		return err
	}
	l.segs = append(l.segs, s)
	syncDir(l.dir)
	return nil
}

// Roll starts a new segment now (tests, admin).
func (l *Log) Roll() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.active().size == 0 {
		return nil
	}
	return l.roll(l.leo())
}

// Read returns whole batches starting with the one containing offset, up to
// maxBytes but always at least one whole batch (KIP-74), never including a
// batch whose base offset is at or beyond upTo. The bytes come straight from
// the segment file. Reads stay within one segment; the caller fetches again.
func (l *Log) Read(offset int64, maxBytes int, upTo int64) ([]byte, error) {
	return l.ReadWith(offset, maxBytes, upTo, nil)
}

// ReadWith is Read with the destination buffer coming from alloc (nil: a
// fresh slice), which must return a slice of length n; its contents need
// not be zeroed. The result is a prefix of that buffer.
func (l *Log) ReadWith(offset int64, maxBytes int, upTo int64, alloc func(n int) []byte) ([]byte, error) {
	l.mu.RLock()
	if offset < l.logStart || offset > l.leo() {
		l.mu.RUnlock()
		return nil, ErrOffsetOutOfRange
	}
	if offset >= upTo {
		l.mu.RUnlock()
		return nil, nil
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset }) - 1
	if i < 0 {
		i = 0
	}
	var (
		s     *segment
		pos   int64
		h     BatchHeader
		found bool
		err   error
		limit int64
	)
	for ; i < len(l.segs); i++ {
		s = l.segs[i]
		limit = s.size
		pos, h, found, err = s.findBatch(offset, limit)
		if err != nil || found {
			break
		}
	}
	l.mu.RUnlock()
	if err != nil || !found || h.BaseOffset >= upTo {
		return nil, err
	}
	want := int64(maxBytes)
	if want < h.Size() {
		want = h.Size()
	}
	if pos+want > limit {
		want = limit - pos
	}
	var buf []byte
	if alloc != nil {
		buf = alloc(int(want))
	} else {
		buf = make([]byte, want)
	}
	n, err := s.f.ReadAt(buf, pos)
	if err != nil && n < int(h.Size()) {
		return nil, fmt.Errorf("read segment: %w", err)
	}
	buf = buf[:n]
	// Keep whole batches below upTo only.
	end := 0
	for end+BatchHeaderLen <= len(buf) {
		bh, err := ParseHeader(buf[end:])
		if err != nil || bh.BaseOffset >= upTo || end+int(bh.Size()) > len(buf) {
			break
		}
		end += int(bh.Size())
	}
	return buf[:end], nil
}

// ScanHeaders calls fn for each batch header from the batch containing from
// to the log end, until fn returns false.
func (l *Log) ScanHeaders(from int64, fn func(*BatchHeader) bool) error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var hb [BatchHeaderLen]byte
	for _, s := range l.segs {
		if s.next <= from {
			continue
		}
		pos := s.lookup(from)
		for pos < s.size {
			if _, err := s.f.ReadAt(hb[:], pos); err != nil {
				return err
			}
			h, err := ParseHeader(hb[:])
			if err != nil {
				return err
			}
			if h.LastOffset() >= from && !fn(&h) {
				return nil
			}
			pos += h.Size()
		}
	}
	return nil
}

// OffsetForTimestamp returns the base offset and max timestamp of the first
// batch whose max timestamp is >= ts (batch granularity), or found=false.
func (l *Log) OffsetForTimestamp(ts int64) (offset, batchTs int64, found bool, err error) {
	l.mu.RLock()
	var start int64 = -1
	var s *segment
	for _, sg := range l.segs {
		if sg.maxTs >= ts {
			s = sg
			break
		}
	}
	if s == nil {
		l.mu.RUnlock()
		return 0, 0, false, nil
	}
	// The time index holds increasing timestamps: start from the last
	// entry below ts.
	start = s.base
	for _, e := range s.tidx {
		if e.ts >= ts {
			break
		}
		start = s.base + int64(e.rel)
	}
	l.mu.RUnlock()
	err = l.ScanHeaders(start, func(h *BatchHeader) bool {
		if h.MaxTimestamp >= ts {
			offset, batchTs, found = h.BaseOffset, h.MaxTimestamp, true
			if offset < l.logStart {
				offset = l.logStart
			}
			return false
		}
		return true
	})
	return offset, batchTs, found, err
}

// MaxTimestamp returns the largest timestamp in the log and the offset it was recorded at.
func (l *Log) MaxTimestamp() (offset, ts int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	offset, ts = -1, -1
	for _, s := range l.segs {
		if s.maxTs > ts {
			ts, offset = s.maxTs, s.maxTsOffset
		}
	}
	return offset, ts
}

// TruncateTo removes every batch ending at or after offset (a batch that
// straddles offset goes entirely), for a follower whose log diverged from
// its leader. It returns the new log end offset.
func (l *Log) TruncateTo(offset int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if offset >= l.leo() {
		return l.leo(), nil
	}
	for len(l.segs) > 1 && l.active().base >= offset {
		s := l.active()
		l.segs = l.segs[:len(l.segs)-1]
		s.remove()
	}
	s := l.active()
	if offset <= s.base {
		s.truncateAt(0, s.base)
		if offset < s.base {
			// Everything is gone: restart the log at offset.
			s.remove()
			ns, err := createSegment(l.dir, offset)
			if err != nil {
				return 0, err
			}
			l.segs[len(l.segs)-1] = ns
			l.logStart = offset
		}
	} else {
		pos, h, found, err := s.findBatch(offset, s.size)
		if err != nil {
			return 0, err
		}
		if found {
			if err := s.truncateAt(pos, h.BaseOffset); err != nil {
				return 0, err
			}
		}
	}
	if err := l.epochs.truncateFromEnd(l.leo()); err != nil {
		return 0, err
	}
	return l.leo(), nil
}

// EndOffsetForEpoch answers OffsetForLeaderEpoch from the epoch cache.
func (l *Log) EndOffsetForEpoch(epoch int32) (int32, int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.epochs.EndOffsetFor(epoch, l.leo())
}

// Epochs returns a copy of the leader epoch cache.
func (l *Log) Epochs() []EpochEntry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.epochs.Entries()
}

// EnforceRetention deletes whole non-active segments older than retention.ms
// or beyond retention.bytes, never past maxOffset (the high watermark: data
// not yet replicated is never deleted). It returns how many it deleted.
func (l *Log) EnforceRetention(now time.Time, maxOffset int64) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var total int64
	for _, s := range l.segs {
		total += s.size
	}
	n := 0
	for len(l.segs) > 1 {
		s := l.segs[0]
		next := l.segs[1].base
		if next > maxOffset {
			break
		}
		byTime := l.cfg.RetentionMs >= 0 && s.maxTs >= 0 && now.UnixMilli()-s.maxTs > l.cfg.RetentionMs
		bySize := l.cfg.RetentionBytes >= 0 && total-s.size >= l.cfg.RetentionBytes
		if !byTime && !bySize {
			break
		}
		total -= s.size
		l.segs = l.segs[1:]
		s.remove()
		l.logStart = next
		n++
	}
	if n > 0 {
		l.epochs.truncateFromStart(l.logStart)
		l.writeLogStart()
	}
	return n, nil
}

func (l *Log) writeLogStart() {
	p := filepath.Join(l.dir, "log-start-offset")
	os.WriteFile(p+".tmp", []byte(strconv.FormatInt(l.logStart, 10)+"\n"), 0o644)
	os.Rename(p+".tmp", p)
}

// Flush syncs the active segment.
func (l *Log) Flush() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	return l.active().sync()
}

// Close syncs and closes the log.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	err := l.active().sync()
	l.closeSegs()
	return err
}

func (l *Log) closeSegs() {
	for _, s := range l.segs {
		s.close()
	}
}

// Delete closes the log and removes its directory.
func (l *Log) Delete() error {
	l.Close()
	return os.RemoveAll(l.dir)
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Reset empties the log and restarts it at offset: a follower whose log
// end is below the leader's log start (the leader deleted what it lacks).
func (l *Log) Reset(offset int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errClosed
	}
	for _, s := range l.segs {
		s.remove()
	}
	s, err := createSegment(l.dir, offset)
	if err != nil {
		return err
	}
	l.segs = []*segment{s}
	l.logStart = offset
	l.writeLogStart()
	l.epochs.entries = nil
	return l.epochs.flush()
}

// ActiveBase is the base offset of the active segment (producer state is
// rebuilt from there after a truncation, as on recovery).
func (l *Log) ActiveBase() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.active().base
}

// LatestEpoch is the newest leader epoch in the log, or -1.
func (l *Log) LatestEpoch() int32 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.epochs.Latest()
}
