package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// clientOpts is the one client configuration every target gets. acks=1 needs idempotence off in
// franz-go; it then gets the same five requests in flight per broker that idempotence allows.
func clientOpts(seeds []string, allAcks bool, linger time.Duration) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.AllowAutoTopicCreation(),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedRecords(1 << 20),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(linger),
	}
	if allAcks {
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	} else {
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(),
			kgo.MaxProduceRequestsInflightPerBroker(5))
	}
	return opts
}

func payload(size int) []byte {
	b := make([]byte, size)
	_, _ = rand.Read(b)
	return b
}

type throughput struct {
	records int
	bytes   int64
	elapsed time.Duration
	use     *usage // the produce window's resource use, when sampled
}

func (t throughput) recsPerSec() float64 { return float64(t.records) / t.elapsed.Seconds() }
func (t throughput) mbPerSec() float64   { return float64(t.bytes) / 1e6 / t.elapsed.Seconds() }

// warmUp produces one acknowledged record so connection set-up, metadata, topic creation and
// InitProducerId are not timed.
func warmUp(ctx context.Context, cl *kgo.Client, topic string, value []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: value}).FirstErr(); err != nil {
		return fmt.Errorf("warm-up produce: %w", err)
	}
	return nil
}

// produceThroughput sends n records as fast as the client's buffering allows and times from the
// first Produce call to the last acknowledgement.
func produceThroughput(ctx context.Context, seeds []string, topic string, n int, value []byte, allAcks bool, smp *sampler) (throughput, error) {
	cl, err := kgo.NewClient(clientOpts(seeds, allAcks, 0)...)
	if err != nil {
		return throughput{}, err
	}
	defer cl.Close()
	if err := warmUp(ctx, cl, topic, value); err != nil {
		return throughput{}, err
	}
	var (
		wg       sync.WaitGroup
		firstErr atomic.Pointer[error]
	)
	wg.Add(n)
	cb := func(_ *kgo.Record, err error) {
		if err != nil {
			firstErr.CompareAndSwap(nil, &err)
		}
		wg.Done()
	}
	var before snapshot
	if smp != nil {
		before = smp.snap()
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: value}, cb)
	}
	wg.Wait()
	el := time.Since(start)
	if p := firstErr.Load(); p != nil {
		return throughput{}, fmt.Errorf("produce: %w", *p)
	}
	tp := throughput{records: n, bytes: int64(n) * int64(len(value)), elapsed: el}
	if smp != nil {
		u := smp.diff(before, smp.snap())
		tp.use = &u
	}
	return tp, nil
}

// consumeThroughput reads want records from the start of topic with a fresh client; the clock
// includes the client's metadata and ListOffsets round trips (milliseconds against seconds).
func consumeThroughput(ctx context.Context, seeds []string, topic string, want int) (throughput, error) {
	start := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return throughput{}, err
	}
	defer cl.Close()
	var got int
	var bytes int64
	for got < want {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return throughput{}, fmt.Errorf("consume: %d of %d records: %w", got, want, err)
		}
		for _, fe := range fs.Errors() {
			return throughput{}, fmt.Errorf("consume %s/%d: %w", fe.Topic, fe.Partition, fe.Err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got++
			bytes += int64(len(r.Value))
		})
	}
	return throughput{records: got, bytes: bytes, elapsed: time.Since(start)}, nil
}

type latency struct {
	p50, p99 time.Duration
	rate     float64 // achieved records/s
	samples  int
}

// produceLatency offers records at a fixed rate with linger 0 (any linger would dominate) and
// measures each record from its Produce call to its acknowledgement.
func produceLatency(ctx context.Context, seeds []string, topic string, value []byte, allAcks bool, rate int, dur time.Duration) (latency, error) {
	cl, err := kgo.NewClient(clientOpts(seeds, allAcks, 0)...)
	if err != nil {
		return latency{}, err
	}
	defer cl.Close()
	if err := warmUp(ctx, cl, topic, value); err != nil {
		return latency{}, err
	}
	n := int(float64(rate) * dur.Seconds())
	if n < 100 {
		n = 100
	}
	lat := make([]time.Duration, n)
	var (
		wg       sync.WaitGroup
		firstErr atomic.Pointer[error]
	)
	wg.Add(n)
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; i < n; i++ {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		sent := time.Now()
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: value}, func(_ *kgo.Record, err error) {
			lat[i] = time.Since(sent)
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	el := time.Since(start)
	if p := firstErr.Load(); p != nil {
		return latency{}, fmt.Errorf("produce: %w", *p)
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	return latency{
		p50:     lat[n*50/100],
		p99:     lat[n*99/100],
		rate:    float64(n) / el.Seconds(),
		samples: n,
	}, nil
}
