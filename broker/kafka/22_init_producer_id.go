package kafka

// InitProducerId (key 22), v0-4, for idempotent producers (Java producers
// are idempotent by default, as is franz-go).
//
// Ids come from blocks reserved in the metadata store, so they never repeat
// across restarts or brokers. v3+ with a known id and epoch bumps the
// epoch (KIP-360: the producer resets its sequences after an error).
// Transactional ids are refused: transactions are not implemented.

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/drover/drover/broker/cluster"
)

func init() { register(22, 0, 4, handleInitProducerID) }

func handleInitProducerID(s *Server, cc *clientConn, kreq kmsg.Request) kmsg.Response {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	}
	if req.Version >= 3 && req.ProducerID >= 0 && req.ProducerEpoch >= 0 && req.ProducerEpoch < 32766 {
		resp.ProducerID, resp.ProducerEpoch = req.ProducerID, req.ProducerEpoch+1
		return resp
	}
	id, err := s.pids.next(context.Background())
	if err != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}

type pidAllocator struct {
	store cluster.Store

	mu         sync.Mutex
	next_, end int64
}

func (a *pidAllocator) next(ctx context.Context) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.next_ >= a.end {
		start, n, err := a.store.ProducerIDBlock(ctx)
		if err != nil {
			return 0, err
		}
		a.next_, a.end = start, start+n
	}
	id := a.next_
	a.next_++
	return id, nil
}
