package rolling

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/drover/drover/provisioner/health"
)

// CanaryTopic carries the roll canary's records.
const CanaryTopic = "drover-roll-canary"

// CanaryResult is what `--canary` prints after a roll.
type CanaryResult struct {
	Sent         int64  `json:"sent"`
	Acked        int64  `json:"acked"`
	Consumed     int64  `json:"consumed"`
	Lost         int64  `json:"lost"`
	Duplicated   int64  `json:"duplicated"`
	LongestStall string `json:"longest_stall"`
	Err          string `json:"error,omitempty"`
}

// Canary runs an idempotent acks=all producer and a consumer through a roll. Every record carries
// its sequence number; after the roll the consumer must see each acknowledged number exactly once.
type Canary struct {
	prod, cons         *kgo.Client
	stopProd, stopCons context.CancelFunc
	prodDone, consDone chan struct{}

	mu      sync.Mutex
	sent    int64
	acked   map[uint64]bool
	seen    map[uint64]int
	lastAck time.Time
	stall   time.Duration
	prodErr error
}

// StartCanary creates the canary topic (replicated like the cluster's defaults) and starts writing.
func StartCanary(ctx context.Context, dial health.Dialer, seeds []string, brokers int) (*Canary, error) {
	c := &Canary{acked: map[uint64]bool{}, seen: map[uint64]int{}}
	var err error
	c.prod, err = health.Client(dial, seeds, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0),
		kgo.RecordRetries(1<<30), kgo.RecordDeliveryTimeout(2*time.Minute))
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(c.prod)
	rf := int16(min(3, brokers))
	cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
	defer ccancel()
	if _, err := adm.CreateTopic(cctx, int32(max(1, brokers)), rf, nil, CanaryTopic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		c.prod.Close()
		return nil, fmt.Errorf("create %s: %w", CanaryTopic, err)
	}
	// read from the end as it is now, so only this roll's records count
	ends, err := adm.ListEndOffsets(cctx, CanaryTopic)
	if err != nil {
		c.prod.Close()
		return nil, fmt.Errorf("end offsets of %s: %w", CanaryTopic, err)
	}
	start := map[string]map[int32]kgo.Offset{CanaryTopic: {}}
	ends.Each(func(o kadm.ListedOffset) { start[CanaryTopic][o.Partition] = kgo.NewOffset().At(o.Offset) })
	c.cons, err = health.Client(dial, seeds, kgo.ConsumePartitions(start), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		c.prod.Close()
		return nil, err
	}
	pctx, pcancel := context.WithCancel(context.Background())
	cctx2, ccancel2 := context.WithCancel(context.Background())
	c.stopProd, c.stopCons = pcancel, ccancel2
	c.prodDone, c.consDone = make(chan struct{}), make(chan struct{})
	c.lastAck = time.Now()
	go c.produce(pctx)
	go c.consume(cctx2)
	return c, nil
}

func (c *Canary) produce(ctx context.Context) {
	defer close(c.prodDone)
	tick := time.NewTicker(5 * time.Millisecond) // ~200 records/s: enough to see any gap
	defer tick.Stop()
	for seq := uint64(0); ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		v := make([]byte, 8)
		binary.BigEndian.PutUint64(v, seq)
		c.mu.Lock()
		c.sent++
		c.mu.Unlock()
		// the records outlive ctx: Stop flushes them, so each one ends acked or failed, never dropped
		c.prod.Produce(context.Background(), &kgo.Record{Topic: CanaryTopic, Value: v}, func(r *kgo.Record, err error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if err != nil {
				if !errors.Is(err, context.Canceled) && c.prodErr == nil {
					c.prodErr = err
				}
				return
			}
			now := time.Now()
			if d := now.Sub(c.lastAck); d > c.stall {
				c.stall = d
			}
			c.lastAck = now
			c.acked[binary.BigEndian.Uint64(r.Value)] = true
		})
	}
}

func (c *Canary) consume(ctx context.Context) {
	defer close(c.consDone)
	for ctx.Err() == nil {
		fs := c.cons.PollFetches(ctx)
		c.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			if len(r.Value) == 8 {
				c.seen[binary.BigEndian.Uint64(r.Value)]++
			}
		})
		c.mu.Unlock()
	}
}

// Stop stops producing, waits for every outstanding record's ack, lets the consumer catch up with
// every acknowledged record (bounded by ctx and 30 s), and counts losses and duplicates.
func (c *Canary) Stop(ctx context.Context) CanaryResult {
	c.stopProd()
	<-c.prodDone
	fctx, fcancel := context.WithTimeout(ctx, 2*time.Minute)
	_ = c.prod.Flush(fctx)
	fcancel()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil && c.missing() > 0 {
		time.Sleep(50 * time.Millisecond)
	}
	c.stopCons()
	<-c.consDone
	c.prod.Close()
	c.cons.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	r := CanaryResult{Sent: c.sent, Acked: int64(len(c.acked)), LongestStall: c.stall.Round(time.Millisecond).String()}
	for _, n := range c.seen {
		r.Consumed += int64(n)
		if n > 1 {
			r.Duplicated += int64(n - 1)
		}
	}
	r.Lost = int64(c.missingLocked())
	if c.prodErr != nil {
		r.Err = "producer: " + c.prodErr.Error()
	}
	return r
}

func (c *Canary) missing() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.missingLocked()
}

func (c *Canary) missingLocked() int {
	n := 0
	for s := range c.acked {
		if c.seen[s] == 0 {
			n++
		}
	}
	return n
}
