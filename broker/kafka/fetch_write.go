package kafka

import (
	"bufio"
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Writing responses without copying record data.
//
// A Fetch response is mostly record batches read from the segment files.
// kmsg's encoder would copy them into the frame buffer; instead the frame
// is encoded here around them and the pieces go out with one writev
// (net.Buffers), the batches straight from the pooled read buffers, which
// return to the pool once written. The bytes on the wire are exactly what
// appendResponse would produce (fetch_write_test.go checks it against kmsg).

// inlineRecordBytes: record sets smaller than this are copied into the
// frame; bigger ones are written from their own buffer.
const inlineRecordBytes = 16 << 10

// fetchCut is a record set left out of the encoded frame: it goes at
// position at of the frame buffer.
type fetchCut struct {
	at   int
	data []byte
}

// appendFetchFrame frames resp like appendResponse, except that record sets
// of inlineRecordBytes or more are not copied into dst but returned as cuts
// (in order). ok is false when resp uses a field this encoder does not write
// (the caller then uses appendResponse); dst is then garbage.
func appendFetchFrame(dst []byte, cuts []fetchCut, resp *kmsg.FetchResponse, corr int32) ([]byte, []fetchCut, bool) {
	v := resp.Version
	if v < 4 || v > 12 || resp.UnknownTags.Len() != 0 || len(resp.Brokers) != 0 {
		return dst, cuts, false
	}
	flex := v >= 12
	dst = append(dst, 0, 0, 0, 0)
	dst = kbin.AppendInt32(dst, corr)
	if flex {
		dst = append(dst, 0) // response header tags
	}
	dst = kbin.AppendInt32(dst, resp.ThrottleMillis)
	if v >= 7 {
		dst = kbin.AppendInt16(dst, resp.ErrorCode)
		dst = kbin.AppendInt32(dst, resp.SessionID)
	}
	arrayLen := func(dst []byte, n int) []byte {
		if flex {
			return kbin.AppendCompactArrayLen(dst, n)
		}
		return kbin.AppendArrayLen(dst, n)
	}
	dst = arrayLen(dst, len(resp.Topics))
	data := 0
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if t.UnknownTags.Len() != 0 {
			return dst, cuts, false
		}
		if flex {
			dst = kbin.AppendCompactString(dst, t.Topic)
		} else {
			dst = kbin.AppendString(dst, t.Topic)
		}
		dst = arrayLen(dst, len(t.Partitions))
		for j := range t.Partitions {
			p := &t.Partitions[j]
			if p.UnknownTags.Len() != 0 ||
				p.DivergingEpoch.Epoch != -1 || p.DivergingEpoch.EndOffset != -1 || p.DivergingEpoch.UnknownTags.Len() != 0 ||
				p.CurrentLeader.LeaderID != -1 || p.CurrentLeader.LeaderEpoch != -1 || p.CurrentLeader.UnknownTags.Len() != 0 ||
				p.SnapshotID.EndOffset != -1 || p.SnapshotID.Epoch != -1 || p.SnapshotID.UnknownTags.Len() != 0 {
				return dst, cuts, false
			}
			dst = kbin.AppendInt32(dst, p.Partition)
			dst = kbin.AppendInt16(dst, p.ErrorCode)
			dst = kbin.AppendInt64(dst, p.HighWatermark)
			dst = kbin.AppendInt64(dst, p.LastStableOffset)
			if v >= 5 {
				dst = kbin.AppendInt64(dst, p.LogStartOffset)
			}
			if flex {
				dst = kbin.AppendCompactNullableArrayLen(dst, len(p.AbortedTransactions), p.AbortedTransactions == nil)
			} else {
				dst = kbin.AppendNullableArrayLen(dst, len(p.AbortedTransactions), p.AbortedTransactions == nil)
			}
			for k := range p.AbortedTransactions {
				a := &p.AbortedTransactions[k]
				if a.UnknownTags.Len() != 0 {
					return dst, cuts, false
				}
				dst = kbin.AppendInt64(dst, a.ProducerID)
				dst = kbin.AppendInt64(dst, a.FirstOffset)
				if flex {
					dst = append(dst, 0)
				}
			}
			if v >= 11 {
				dst = kbin.AppendInt32(dst, p.PreferredReadReplica)
			}
			rb := p.RecordBatches
			switch {
			case len(rb) < inlineRecordBytes:
				if flex {
					dst = kbin.AppendCompactNullableBytes(dst, rb)
				} else {
					dst = kbin.AppendNullableBytes(dst, rb)
				}
			default:
				if flex {
					dst = kbin.AppendUvarint(dst, uint32(len(rb))+1)
				} else {
					dst = kbin.AppendInt32(dst, int32(len(rb)))
				}
				cuts = append(cuts, fetchCut{len(dst), rb})
				data += len(rb)
			}
			if flex {
				dst = append(dst, 0) // partition tags
			}
		}
		if flex {
			dst = append(dst, 0) // topic tags
		}
	}
	if flex {
		dst = append(dst, 0) // response tags
	}
	binary.BigEndian.PutUint32(dst[:4], uint32(len(dst)+data-4))
	return dst, cuts, true
}

// writeResponse frames and writes one response, flushing w when flush is
// set; out is the connection's reusable frame buffer. Pooled buffers the
// handler attached to the connection are released once written.
func (cc *clientConn) writeResponse(w *bufio.Writer, out *[]byte, resp kmsg.Response, corr int32, flush bool) error {
	defer cc.releaseBufs()
	if fr, ok := resp.(*kmsg.FetchResponse); ok {
		frame, cuts, ok := appendFetchFrame((*out)[:0], cc.cuts[:0], fr, corr)
		if ok {
			*out = frame
			cc.cuts = cuts
			if len(cuts) > 0 {
				return cc.writeCut(w, frame, cuts)
			}
			return cc.writeFrame(w, out, flush)
		}
	}
	*out = appendResponse((*out)[:0], resp, corr)
	return cc.writeFrame(w, out, flush)
}

func (cc *clientConn) writeFrame(w *bufio.Writer, out *[]byte, flush bool) error {
	cc.s.metrics.bytesOut.Add(int64(len(*out)))
	if _, err := w.Write(*out); err != nil {
		return err
	}
	if flush {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if cap(*out) > 1<<20 {
		*out = nil // do not pin a big buffer per idle connection
	}
	return nil
}

// writeCut writes a frame with its cut-out record sets in one writev.
func (cc *clientConn) writeCut(w *bufio.Writer, frame []byte, cuts []fetchCut) error {
	if err := w.Flush(); err != nil { // earlier responses go first
		return err
	}
	iov := cc.iov[:0]
	prev := 0
	n := len(frame)
	for _, c := range cuts {
		iov = append(iov, frame[prev:c.at], c.data)
		prev = c.at
		n += len(c.data)
	}
	if prev < len(frame) {
		iov = append(iov, frame[prev:])
	}
	cc.s.metrics.bytesOut.Add(int64(n))
	bufs := iov
	_, err := bufs.WriteTo(cc.conn)
	clear(iov)
	clear(cuts)
	cc.iov = iov[:0]
	return err
}

// fetchAlloc is the log read allocator of a Fetch on this connection: the
// buffers stay attached to the connection until the response is written.
func (cc *clientConn) fetchAlloc(n int) []byte {
	b := getBuf(n)
	cc.bufs = append(cc.bufs, b)
	return b
}

// releaseBufs returns the connection's attached buffers to the pool.
func (cc *clientConn) releaseBufs() {
	for i, b := range cc.bufs {
		putBuf(b)
		cc.bufs[i] = nil
	}
	cc.bufs = cc.bufs[:0]
}
