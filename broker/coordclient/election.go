package coordclient

import (
	"context"
	"fmt"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Leadership is held by the winner of Campaign until Resign or until its lease is lost.
type Leadership struct {
	session  *concurrency.Session
	election *concurrency.Election
}

// Campaign blocks until this candidate leads election (a key prefix such as "/controller")
// or ctx is done. Candidates queue in lease-creation order; the leader's value is readable by
// everybody through Leader. ttl bounds how long a dead leader keeps the post.
func (c *Client) Campaign(ctx context.Context, election string, value []byte, ttl time.Duration) (*Leadership, error) {
	// The session outlives ctx: ctx only bounds the wait, the leadership lasts until Resign,
	// Client.Close or lease loss.
	s, err := concurrency.NewSession(c.cli, concurrency.WithTTL(int(ttlSeconds(ttl))), concurrency.WithContext(c.ctx))
	if err != nil {
		return nil, fmt.Errorf("coordclient: campaign %s: session: %w", election, err)
	}
	e := concurrency.NewElection(s, strings.TrimSuffix(election, "/"))
	// etcd's Election.Campaign, when ctx ends, resigns with the client's own context: without a
	// quorum that never returns, and a broker stopping while its coordinators are gone would hang
	// until SIGKILL. So wait here on ctx, and let the campaign finish (and its lease be revoked)
	// in the background once etcd answers or the client closes.
	done := make(chan error, 1)
	go func() { done <- e.Campaign(ctx, string(value)) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		go func() {
			<-done
			s.Close()
		}()
		return nil, fmt.Errorf("coordclient: campaign %s: %w", election, ctx.Err())
	}
	if err != nil {
		s.Close() // revokes the lease, withdrawing the candidacy
		return nil, fmt.Errorf("coordclient: campaign %s: %w", election, err)
	}
	return &Leadership{session: s, election: e}, nil
}

// Done is closed when leadership is lost (lease expired, e.g. after a partition) or given up.
func (l *Leadership) Done() <-chan struct{} { return l.session.Done() }

// Rev is the revision at which this leadership began; it increases with every new leader,
// so it serves as an epoch / fencing token (Kafka's controller epoch).
func (l *Leadership) Rev() int64 { return l.election.Rev() }

// Key is the election key held by this leader; guard writes with
// clientv3.Compare(clientv3.CreateRevision(l.Key()), "=", l.Rev()) to make them conditional on
// still leading.
func (l *Leadership) Key() string { return l.election.Key() }

// Lease is the leadership's lease; keys attached to it vanish with the leadership.
func (l *Leadership) Lease() clientv3.LeaseID { return l.session.Lease() }

// Resign gives up leadership so the next candidate takes over at once.
func (l *Leadership) Resign(ctx context.Context) error {
	err := l.election.Resign(ctx)
	if cerr := l.session.Close(); err == nil && cerr != nil && ctx.Err() == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("coordclient: resign: %w", err)
	}
	return nil
}

// Leader returns the current leader's value, or ErrNoLeader.
func (c *Client) Leader(ctx context.Context, election string) ([]byte, error) {
	resp, err := c.cli.Get(ctx, electionPrefix(election), clientv3.WithFirstCreate()...)
	if err != nil {
		return nil, fmt.Errorf("coordclient: leader of %s: %w", election, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, ErrNoLeader
	}
	return resp.Kvs[0].Value, nil
}

// electionPrefix keeps "/controller" from also matching "/controller_epoch": candidates live
// under "/controller/<lease>".
func electionPrefix(election string) string {
	return strings.TrimSuffix(election, "/") + "/"
}
