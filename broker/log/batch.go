package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Record batch v2 layout (61-byte header). BaseOffset (0-7) and the partition
// leader epoch (12-15) sit outside the CRC, which is what lets a broker store
// a client's batch verbatim and only stamp those two fields.
const (
	BatchHeaderLen = 61

	offBaseOffset      = 0
	offLength          = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offFirstTimestamp  = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offNumRecords      = 57

	AttrCompressionMask = 0x07
	AttrTimestampType   = 0x08
	AttrTransactional   = 0x10
	AttrControl         = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Validation errors, each mapping to one Kafka error code in the protocol layer.
var (
	ErrCorrupt          = errors.New("corrupt record batch")           // CORRUPT_MESSAGE
	ErrTooLarge         = errors.New("record batch too large")         // MESSAGE_TOO_LARGE
	ErrInvalidRecord    = errors.New("invalid record batch")           // INVALID_RECORD
	ErrUnsupportedMagic = errors.New("unsupported record batch magic") // UNSUPPORTED_VERSION
	ErrOffsetOutOfRange = errors.New("offset out of range")
)

// BatchHeader is the decoded fixed part of a v2 record batch.
type BatchHeader struct {
	BaseOffset           int64
	Length               int32
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	FirstTimestamp       int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// Size is the whole batch size on disk including the offset and length fields.
func (h *BatchHeader) Size() int64 { return int64(h.Length) + 12 }

// LastOffset is the offset of the last record in the batch.
func (h *BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset right after the batch.
func (h *BatchHeader) NextOffset() int64 { return h.LastOffset() + 1 }

// LastSequence is the sequence number of the last record (wrapping at int32).
func (h *BatchHeader) LastSequence() int32 {
	s := int64(h.BaseSequence) + int64(h.LastOffsetDelta)
	if s > 0x7fffffff {
		s -= 0x80000000
	}
	return int32(s)
}

func (h *BatchHeader) Compression() int8     { return int8(h.Attributes & AttrCompressionMask) }
func (h *BatchHeader) IsControl() bool       { return h.Attributes&AttrControl != 0 }
func (h *BatchHeader) IsTransactional() bool { return h.Attributes&AttrTransactional != 0 }

// ParseHeader decodes the first BatchHeaderLen bytes of b. It does not check the CRC.
func ParseHeader(b []byte) (BatchHeader, error) {
	var h BatchHeader
	if len(b) < BatchHeaderLen {
		return h, fmt.Errorf("%w: %d bytes, need %d", ErrCorrupt, len(b), BatchHeaderLen)
	}
	be := binary.BigEndian
	h.BaseOffset = int64(be.Uint64(b[offBaseOffset:]))
	h.Length = int32(be.Uint32(b[offLength:]))
	h.PartitionLeaderEpoch = int32(be.Uint32(b[offLeaderEpoch:]))
	h.Magic = int8(b[offMagic])
	h.CRC = be.Uint32(b[offCRC:])
	h.Attributes = int16(be.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(be.Uint32(b[offLastOffsetDelta:]))
	h.FirstTimestamp = int64(be.Uint64(b[offFirstTimestamp:]))
	h.MaxTimestamp = int64(be.Uint64(b[offMaxTimestamp:]))
	h.ProducerID = int64(be.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(be.Uint16(b[offProducerEpoch:]))
	h.BaseSequence = int32(be.Uint32(b[offBaseSequence:]))
	h.NumRecords = int32(be.Uint32(b[offNumRecords:]))
	if h.Magic != 2 {
		return h, fmt.Errorf("%w: %d", ErrUnsupportedMagic, h.Magic)
	}
	if h.Length < BatchHeaderLen-12 {
		return h, fmt.Errorf("%w: length %d", ErrCorrupt, h.Length)
	}
	return h, nil
}

// CheckCRC verifies the CRC32C of a complete batch.
func CheckCRC(b []byte) bool {
	if len(b) < BatchHeaderLen {
		return false
	}
	return crc32.Checksum(b[offAttributes:], castagnoli) == binary.BigEndian.Uint32(b[offCRC:])
}

// ValidateBatch checks one client-produced batch (the whole of b) against the
// rules Kafka applies on produce: size, magic, length, CRC, offset delta vs
// record count, and no client control batches.
func ValidateBatch(b []byte, maxMessageBytes int) (BatchHeader, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if maxMessageBytes > 0 && len(b) > maxMessageBytes {
		return h, fmt.Errorf("%w: %d > %d", ErrTooLarge, len(b), maxMessageBytes)
	}
	if int(h.Length) != len(b)-12 {
		return h, fmt.Errorf("%w: length field %d, batch %d bytes", ErrCorrupt, h.Length, len(b))
	}
	if !CheckCRC(b) {
		return h, fmt.Errorf("%w: crc mismatch", ErrCorrupt)
	}
	if h.NumRecords <= 0 || h.LastOffsetDelta != h.NumRecords-1 {
		return h, fmt.Errorf("%w: last offset delta %d with %d records", ErrInvalidRecord, h.LastOffsetDelta, h.NumRecords)
	}
	if h.IsControl() {
		return h, fmt.Errorf("%w: control batch from a client", ErrInvalidRecord)
	}
	return h, nil
}

// SplitBatches walks a concatenation of whole batches (a produce request's
// records field) and returns each batch slice. Trailing garbage is an error.
func SplitBatches(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		if len(b) < 17 {
			return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(b))
		}
		if b[offMagic] != 2 {
			return nil, fmt.Errorf("%w: %d", ErrUnsupportedMagic, int8(b[offMagic]))
		}
		n := int64(int32(binary.BigEndian.Uint32(b[offLength:]))) + 12
		if n < BatchHeaderLen || n > int64(len(b)) {
			return nil, fmt.Errorf("%w: batch length %d, have %d", ErrCorrupt, n, len(b))
		}
		out = append(out, b[:n:n])
		b = b[n:]
	}
	return out, nil
}

// stamp writes the broker-assigned base offset and leader epoch into a batch.
func stamp(b []byte, baseOffset int64, epoch int32) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(baseOffset))
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}
