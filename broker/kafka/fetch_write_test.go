package kafka

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// appendFetchFrame plus its cuts must be byte for byte what kmsg encodes.
func TestAppendFetchFrameMatchesKmsg(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	sizes := []int{-1, 0, 1, 100, inlineRecordBytes - 1, inlineRecordBytes, inlineRecordBytes + 1, 200 << 10, 1 << 20}
	for v := int16(4); v <= 12; v++ {
		for iter := 0; iter < 40; iter++ {
			resp := kmsg.NewPtrFetchResponse()
			resp.Version = v
			resp.ThrottleMillis = rng.Int31n(100)
			resp.ErrorCode = int16(rng.Intn(3))
			resp.SessionID = rng.Int31()
			for ti := rng.Intn(4); ti > 0; ti-- {
				st := kmsg.NewFetchResponseTopic()
				st.Topic = string(bytes.Repeat([]byte{'a' + byte(rng.Intn(26))}, 1+rng.Intn(300)))
				for pi := rng.Intn(5); pi > 0; pi-- {
					sp := kmsg.NewFetchResponseTopicPartition()
					sp.Partition = rng.Int31()
					sp.ErrorCode = int16(rng.Intn(100))
					sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = rng.Int63(), rng.Int63(), rng.Int63()
					sp.PreferredReadReplica = rng.Int31n(5) - 1
					if rng.Intn(4) == 0 {
						sp.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{}
						for n := rng.Intn(3); n > 0; n-- {
							a := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
							a.ProducerID, a.FirstOffset = rng.Int63(), rng.Int63()
							sp.AbortedTransactions = append(sp.AbortedTransactions, a)
						}
					}
					if n := sizes[rng.Intn(len(sizes))]; n >= 0 {
						sp.RecordBatches = make([]byte, n)
						rng.Read(sp.RecordBatches)
					}
					st.Partitions = append(st.Partitions, sp)
				}
				resp.Topics = append(resp.Topics, st)
			}
			corr := rng.Int31()
			want := appendResponse(nil, resp, corr)
			frame, cuts, ok := appendFetchFrame(nil, nil, resp, corr)
			if !ok {
				t.Fatalf("v%d: not encodable", v)
			}
			var got []byte
			prev := 0
			for _, c := range cuts {
				got = append(got, frame[prev:c.at]...)
				got = append(got, c.data...)
				prev = c.at
			}
			got = append(got, frame[prev:]...)
			if !bytes.Equal(got, want) {
				t.Fatalf("v%d iter %d: frame differs from kmsg's (%d vs %d bytes)", v, iter, len(got), len(want))
			}
		}
	}
}

// Fields the encoder does not write make it decline.
func TestAppendFetchFrameFallback(t *testing.T) {
	for _, mod := range []func(*kmsg.FetchResponse){
		func(r *kmsg.FetchResponse) { r.Version = 13 },
		func(r *kmsg.FetchResponse) { r.Version = 3 },
		func(r *kmsg.FetchResponse) { r.Topics[0].Partitions[0].DivergingEpoch.Epoch = 3 },
		func(r *kmsg.FetchResponse) { r.Topics[0].Partitions[0].CurrentLeader.LeaderID = 1 },
		func(r *kmsg.FetchResponse) { r.Topics[0].Partitions[0].SnapshotID.EndOffset = 1 },
	} {
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = 12
		st := kmsg.NewFetchResponseTopic()
		st.Partitions = append(st.Partitions, kmsg.NewFetchResponseTopicPartition())
		resp.Topics = append(resp.Topics, st)
		mod(resp)
		if _, _, ok := appendFetchFrame(nil, nil, resp, 1); ok {
			t.Fatalf("encoded a response it cannot write")
		}
	}
}

func TestBufPoolClasses(t *testing.T) {
	for _, n := range []int{1, minPooledBuf - 1, minPooledBuf, minPooledBuf + 1, 1 << 20, 1<<20 + 1, maxPooledBuf} {
		b := getBuf(n)
		if len(b) != n || cap(b) < n {
			t.Fatalf("getBuf(%d): len %d cap %d", n, len(b), cap(b))
		}
		putBuf(b)
		if b2, ok := pooledBuf(n); ok && cap(b2) < n {
			t.Fatalf("pooledBuf(%d): cap %d", n, cap(b2))
		}
	}
}
