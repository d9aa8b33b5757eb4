package kafka

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Benchmarks of the produce and fetch paths against an in-process broker,
// with the bench/broker client settings (1 KiB records, 1 MiB batches, no
// compression). They only run with -bench, e.g.
//
//	go test -run '^$' -bench 'Produce|Fetch' -benchtime 200000x -cpuprofile cpu.out ./broker/kafka/
//
// b.N is the record count; the reported MB/s is the record value bytes.

const benchRecordSize = 1024

func benchProduceClient(b *testing.B, s *Server) *kgo.Client {
	return client(b, s, kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(1<<20),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.ProducerLinger(0),
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(5))
}

func benchProduce(b *testing.B, cl *kgo.Client, topic string, n int) {
	value := make([]byte, benchRecordSize)
	ctx := context.Background()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: value}).FirstErr(); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	wg.Add(n)
	for i := 0; i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
}

func BenchmarkProduce(b *testing.B) {
	for _, parts := range []int32{1, 8} {
		b.Run(fmt.Sprintf("p=%d", parts), func(b *testing.B) {
			s := startServer(b, b.TempDir(), func(c *Config) { c.NumPartitions = parts })
			cl := benchProduceClient(b, s)
			b.SetBytes(benchRecordSize)
			b.ResetTimer()
			benchProduce(b, cl, "bench", b.N)
		})
	}
}

func BenchmarkFetch(b *testing.B) {
	for _, parts := range []int32{1, 8} {
		b.Run(fmt.Sprintf("p=%d", parts), func(b *testing.B) {
			s := startServer(b, b.TempDir(), func(c *Config) { c.NumPartitions = parts })
			benchProduce(b, benchProduceClient(b, s), "bench", b.N)
			want := b.N + 1 // plus the warm-up record
			b.SetBytes(benchRecordSize)
			b.ResetTimer()
			cl := client(b, s, kgo.ConsumeTopics("bench"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			got := 0
			for got < want {
				fs := cl.PollFetches(ctx)
				if err := fs.Err0(); err != nil {
					b.Fatal(err)
				}
				got += fs.NumRecords()
			}
		})
	}
}
