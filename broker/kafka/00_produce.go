package kafka

// Produce (key 0), advertised v0-11, served v3-11.
//
// v0-2 carry the legacy message set format; they are advertised only
// because librdkafka < 2.11.1 (Debian's kcat) stops compressing unless v0
// is in range, and are answered per partition with UNSUPPORTED_VERSION.
// v12+ (KIP-890 transactions) is not advertised.
//
// Each partition's records are validated (COMPAT.md: size, magic 2, CRC,
// length, offset delta, no client control batches) and appended verbatim.
// Idempotent producers: duplicates of one of the last five batches are
// acked with their original offset; gaps get OUT_OF_ORDER_SEQUENCE_NUMBER.
// acks=0 sends no response; acks=1 answers once the leader appended;
// acks=-1 refuses with NOT_ENOUGH_REPLICAS while the ISR is smaller than
// min.insync.replicas, else appends and waits until the whole ISR has the
// records (the high watermark passed them), answering
// NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below the minimum
// meanwhile and NOT_LEADER_OR_FOLLOWER if leadership moved (both
// retriable: the idempotent retry is deduplicated).

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(0, 0, 11, handleProduce) }

func handleProduce(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	type waitOn struct {
		p     *partition
		last  int64
		epoch int32
		ti    int
		pi    int
	}
	var waits []waitOn
	if req.TransactionID != nil {
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		if req.Acks == 0 {
			return nil
		}
		return resp
	}
	snap := s.topics.snapshot()
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		t := snap.Topics[rt.Topic]
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset = -1
			sp.LogAppendTime = -1
			sp.LogStartOffset = -1
			switch {
			case req.Version < 3:
				sp.ErrorCode = kerr.UnsupportedVersion.Code
			case rt.Topic == offsetsTopic:
				sp.ErrorCode = kerr.InvalidTopicException.Code
			case t == nil || int(rp.Partition) >= len(t.Partitions) || rp.Partition < 0:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				p := s.topics.get(rt.Topic, rp.Partition)
				if p == nil {
					sp.ErrorCode = kerr.NotLeaderForPartition.Code
					break
				}
				if req.Acks == -1 {
					p.mu.Lock()
					short := p.leader == p.self && len(p.isr) < p.minISR
					p.mu.Unlock()
					if short {
						sp.ErrorCode = kerr.NotEnoughReplicas.Code
						break
					}
				}
				res := p.appendLeader(rp.Records)
				sp.ErrorCode = res.code
				if res.errMsg != "" && req.Version >= 8 {
					sp.ErrorMessage = &res.errMsg
				}
				if res.code == 0 {
					sp.BaseOffset = res.baseOffset
					sp.LogStartOffset = p.log.LogStartOffset()
					s.metrics.produced.Add(res.lastOffset - res.baseOffset + 1)
					if req.Acks == -1 {
						waits = append(waits, waitOn{p, res.lastOffset, res.epoch, len(resp.Topics), len(st.Partitions)})
					}
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if req.Acks == 0 {
		return nil
	}
	if len(waits) > 0 {
		// The hook for acks=all: wait until the ISR has every appended record.
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(req.TimeoutMillis)*time.Millisecond)
		defer cancel()
		go func() {
			select {
			case <-s.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		for _, w := range waits {
			if code := w.p.awaitHW(ctx, w.last, w.epoch); code != 0 {
				sp := &resp.Topics[w.ti].Partitions[w.pi]
				sp.ErrorCode = code
				if code != kerr.NotEnoughReplicasAfterAppend.Code {
					sp.BaseOffset = -1
				}
			}
		}
	}
	return resp
}
