package log

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// A segment is one %020d.log file plus its sparse offset index (8-byte
// entries: uint32 offset relative to the segment base, uint32 file position)
// and time index (12-byte entries: int64 timestamp, uint32 relative offset).
// The indexes are kept in memory and appended to their files as they grow.
type segment struct {
	base  int64
	path  string
	f     *os.File
	idxF  *os.File
	tidxF *os.File

	size        int64 // bytes of whole batches in the log file
	next        int64 // offset after the last batch
	idx         []idxEntry
	tidx        []tidxEntry
	maxTs       int64
	maxTsOffset int64
	created     time.Time
	sinceIdx    int64
}

type idxEntry struct {
	rel uint32
	pos uint32
}

type tidxEntry struct {
	ts  int64
	rel uint32
}

func segName(dir string, base int64, ext string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, ext))
}

func createSegment(dir string, base int64) (*segment, error) {
	s := &segment{base: base, path: segName(dir, base, ".log"), next: base, maxTs: -1, maxTsOffset: -1, created: time.Now()}
	var err error
	if s.f, err = os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	if err := s.openIndexes(true); err != nil {
		s.f.Close()
		return nil, err
	}
	return s, nil
}

func (s *segment) openIndexes(truncate bool) error {
	flags := os.O_RDWR | os.O_CREATE
	if truncate {
		flags |= os.O_TRUNC
	}
	var err error
	if s.idxF, err = os.OpenFile(segName(filepath.Dir(s.path), s.base, ".index"), flags, 0o644); err != nil {
		return fmt.Errorf("open index: %w", err)
	}
	if s.tidxF, err = os.OpenFile(segName(filepath.Dir(s.path), s.base, ".timeindex"), flags, 0o644); err != nil {
		s.idxF.Close()
		return fmt.Errorf("open time index: %w", err)
	}
	return nil
}

// openSegment opens an existing segment. With recover set, it walks every
// batch (checking CRCs when verify is set), truncates a torn or corrupt tail,
// and rebuilds both indexes; otherwise it trusts the files and only reads the
// indexes and the last batch. onBatch sees each intact header during a recover walk.
func openSegment(dir string, base int64, recover, verify bool, indexInterval int64, onBatch func(*BatchHeader)) (*segment, error) {
	s := &segment{base: base, path: segName(dir, base, ".log"), next: base, maxTs: -1, maxTsOffset: -1}
	var err error
	if s.f, err = os.OpenFile(s.path, os.O_RDWR, 0o644); err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	st, err := s.f.Stat()
	if err != nil {
		s.f.Close()
		return nil, err
	}
	s.created = st.ModTime()
	if !recover {
		if err := s.openIndexes(false); err != nil {
			s.f.Close()
			return nil, err
		}
		if s.loadIndexes(st.Size()) == nil && s.loadTail(st.Size()) == nil {
			return s, nil
		}
		s.idxF.Close()
		s.tidxF.Close()
	}
	if err := s.openIndexes(true); err != nil {
		s.f.Close()
		return nil, err
	}
	if err := s.recover(st.Size(), verify, indexInterval, onBatch); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *segment) loadIndexes(fileSize int64) error {
	data, err := io.ReadAll(io.NewSectionReader(s.idxF, 0, 1<<40))
	if err != nil || len(data)%8 != 0 {
		return errors.New("bad index")
	}
	for i := 0; i < len(data); i += 8 {
		e := idxEntry{binary.BigEndian.Uint32(data[i:]), binary.BigEndian.Uint32(data[i+4:])}
		if int64(e.pos) >= fileSize || (len(s.idx) > 0 && e.rel <= s.idx[len(s.idx)-1].rel) {
			return errors.New("bad index entry")
		}
		s.idx = append(s.idx, e)
	}
	tdata, err := io.ReadAll(io.NewSectionReader(s.tidxF, 0, 1<<40))
	if err != nil || len(tdata)%12 != 0 {
		return errors.New("bad time index")
	}
	for i := 0; i < len(tdata); i += 12 {
		e := tidxEntry{int64(binary.BigEndian.Uint64(tdata[i:])), binary.BigEndian.Uint32(tdata[i+8:])}
		s.tidx = append(s.tidx, e)
		if e.ts > s.maxTs {
			s.maxTs, s.maxTsOffset = e.ts, s.base+int64(e.rel)
		}
	}
	return nil
}

// loadTail finds the end offset of a trusted segment by walking from the last
// index entry, and the max timestamp of the batches after the last time index entry.
func (s *segment) loadTail(fileSize int64) error {
	pos := int64(0)
	if len(s.idx) > 0 {
		pos = int64(s.idx[len(s.idx)-1].pos)
	}
	var hb [BatchHeaderLen]byte
	for pos < fileSize {
		if _, err := s.f.ReadAt(hb[:], pos); err != nil {
			return err
		}
		h, err := ParseHeader(hb[:])
		if err != nil || pos+h.Size() > fileSize {
			return errors.New("bad tail")
		}
		if h.MaxTimestamp > s.maxTs {
			s.maxTs, s.maxTsOffset = h.MaxTimestamp, h.LastOffset()
		}
		s.next = h.NextOffset()
		pos += h.Size()
	}
	s.size = fileSize
	return nil
}

func (s *segment) recover(fileSize int64, verify bool, indexInterval int64, onBatch func(*BatchHeader)) error {
	r := bufio.NewReaderSize(io.NewSectionReader(s.f, 0, fileSize), 1<<20)
	var pos int64
	buf := make([]byte, 0, 64<<10)
	for pos < fileSize {
		if fileSize-pos < BatchHeaderLen {
			break
		}
		buf = buf[:BatchHeaderLen]
		if _, err := io.ReadFull(r, buf); err != nil {
			break
		}
		h, err := ParseHeader(buf)
		if err != nil || pos+h.Size() > fileSize || h.BaseOffset < s.next || h.LastOffsetDelta < 0 {
			break
		}
		if verify {
			n := int(h.Size())
			if cap(buf) < n {
				nb := make([]byte, BatchHeaderLen, n)
				copy(nb, buf)
				buf = nb
			}
			buf = buf[:n]
			if _, err := io.ReadFull(r, buf[BatchHeaderLen:]); err != nil {
				break
			}
			if !CheckCRC(buf) {
				break
			}
		} else if _, err := r.Discard(int(h.Size()) - BatchHeaderLen); err != nil {
			break
		}
		if onBatch != nil {
			onBatch(&h)
		}
		s.track(&h, pos, indexInterval)
		pos += h.Size()
		s.size = pos
	}
	if s.size < fileSize {
		if err := s.f.Truncate(s.size); err != nil {
			return fmt.Errorf("truncate torn tail: %w", err)
		}
	}
	return nil
}

// track updates the indexes and end offset for a batch written at pos.
func (s *segment) track(h *BatchHeader, pos int64, indexInterval int64) {
	rel := uint32(h.BaseOffset - s.base)
	if pos == 0 || s.sinceIdx >= indexInterval {
		s.idx = append(s.idx, idxEntry{rel, uint32(pos)})
		var b [8]byte
		binary.BigEndian.PutUint32(b[:], rel)
		binary.BigEndian.PutUint32(b[4:], uint32(pos))
		s.idxF.WriteAt(b[:], int64(len(s.idx)-1)*8)
		if h.MaxTimestamp > s.maxTs || len(s.tidx) == 0 {
			lrel := uint32(h.LastOffset() - s.base)
			s.tidx = append(s.tidx, tidxEntry{h.MaxTimestamp, lrel})
			var t [12]byte
			binary.BigEndian.PutUint64(t[:], uint64(h.MaxTimestamp))
			binary.BigEndian.PutUint32(t[8:], lrel)
			s.tidxF.WriteAt(t[:], int64(len(s.tidx)-1)*12)
		}
		s.sinceIdx = 0
	}
	s.sinceIdx += h.Size()
	if h.MaxTimestamp > s.maxTs {
		s.maxTs, s.maxTsOffset = h.MaxTimestamp, h.LastOffset()
	}
	s.next = h.NextOffset()
}

// lookup returns the file position of the last indexed batch at or before offset.
func (s *segment) lookup(offset int64) int64 {
	rel := offset - s.base
	i := sort.Search(len(s.idx), func(i int) bool { return int64(s.idx[i].rel) > rel })
	if i == 0 {
		return 0
	}
	return int64(s.idx[i-1].pos)
}

// findBatch returns the position and header of the batch containing offset,
// scanning at most to limit. ok is false when no batch at or after offset exists.
func (s *segment) findBatch(offset, limit int64) (int64, BatchHeader, bool, error) {
	pos := s.lookup(offset)
	var hb [BatchHeaderLen]byte
	for pos+BatchHeaderLen <= limit {
		if _, err := s.f.ReadAt(hb[:], pos); err != nil {
			return 0, BatchHeader{}, false, fmt.Errorf("read batch header: %w", err)
		}
		h, err := ParseHeader(hb[:])
		if err != nil {
			return 0, h, false, err
		}
		if h.LastOffset() >= offset {
			return pos, h, true, nil
		}
		pos += h.Size()
	}
	return 0, BatchHeader{}, false, nil
}

// truncateAt cuts the segment at file position pos, whose batch starts at nextOffset.
func (s *segment) truncateAt(pos, nextOffset int64) error {
	if err := s.f.Truncate(pos); err != nil {
		return fmt.Errorf("truncate segment: %w", err)
	}
	s.size = pos
	s.next = nextOffset
	n := sort.Search(len(s.idx), func(i int) bool { return int64(s.idx[i].pos) >= pos })
	if n == 0 && pos > 0 {
		n = min(1, len(s.idx))
	}
	s.idx = s.idx[:n]
	s.idxF.Truncate(int64(n) * 8)
	rel := nextOffset - s.base
	t := sort.Search(len(s.tidx), func(i int) bool { return int64(s.tidx[i].rel) >= rel })
	s.tidx = s.tidx[:t]
	s.tidxF.Truncate(int64(t) * 12)
	s.maxTs, s.maxTsOffset = -1, -1
	for _, e := range s.tidx {
		if e.ts > s.maxTs {
			s.maxTs, s.maxTsOffset = e.ts, s.base+int64(e.rel)
		}
	}
	s.sinceIdx = 0
	// Timestamps of batches after the last kept time index entry are
	// re-learnt by a walk, so retention by time stays correct.
	if len(s.idx) > 0 {
		p := int64(s.idx[len(s.idx)-1].pos)
		var hb [BatchHeaderLen]byte
		for p < pos {
			if _, err := s.f.ReadAt(hb[:], p); err != nil {
				break
			}
			h, err := ParseHeader(hb[:])
			if err != nil {
				break
			}
			if h.MaxTimestamp > s.maxTs {
				s.maxTs, s.maxTsOffset = h.MaxTimestamp, h.LastOffset()
			}
			s.sinceIdx = pos - p
			p += h.Size()
		}
	}
	return nil
}

func (s *segment) sync() error {
	if err := s.f.Sync(); err != nil {
		return err
	}
	s.idxF.Sync()
	s.tidxF.Sync()
	return nil
}

func (s *segment) close() error {
	err := s.f.Close()
	s.idxF.Close()
	s.tidxF.Close()
	return err
}

func (s *segment) remove() {
	dir := filepath.Dir(s.path)
	os.Remove(s.path)
	os.Remove(segName(dir, s.base, ".index"))
	os.Remove(segName(dir, s.base, ".timeindex"))
	// Readers may still hold the file for a pread in flight; the unlinked
	// inode lives until the delayed close.
	time.AfterFunc(time.Minute, func() { s.close() })
}
