// Package coordclient is what the broker uses to talk to drover-coordinator: ephemeral
// registrations bound to leases, a watched key space, compare-and-set and a leader election,
// all on the etcd v3 API that the coordinator serves on its ZooKeeper client port.
//
// Keys are plain strings; the broker mirrors Kafka's ZooKeeper layout (/brokers/ids/<id>,
// /controller, ...). Revisions are etcd revisions: cluster-wide, strictly increasing, so a
// ModRevision doubles as a version for CAS and a revision from List is a safe Watch start.
package coordclient

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// ErrNoLeader is returned by Leader when nobody holds the election.
var ErrNoLeader = errors.New("coordclient: election has no leader")

// Client is a connection to a coordinator ensemble. It is safe for concurrent use.
type Client struct {
	cli    *clientv3.Client
	ctx    context.Context // cancelled by Close; parents leases and sessions
	cancel context.CancelFunc
}

// Dial connects to the ensemble ("host:port" endpoints, the members' clientPorts) and waits
// until a member answers a linearizable read, i.e. until the ensemble has a quorum, or ctx
// is done.
func Dial(ctx context.Context, endpoints []string) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("coordclient: no endpoints")
	}
	eps := make([]string, len(endpoints))
	for i, e := range endpoints {
		if !strings.Contains(e, "://") {
			e = "http://" + e
		}
		eps[i] = e
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: eps,
		// Keepalives detect a dead member within seconds so requests move to another endpoint.
		DialKeepAliveTime:    2 * time.Second,
		DialKeepAliveTimeout: 2 * time.Second,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("coordclient: connect %v: %w", endpoints, err)
	}
	bctx, cancel := context.WithCancel(context.Background())
	c := &Client{cli: cli, ctx: bctx, cancel: cancel}
	var lastErr error
	for {
		tctx, tcancel := context.WithTimeout(ctx, time.Second)
		_, lastErr = cli.Get(tctx, "/\x00drover-ping")
		tcancel()
		if lastErr == nil {
			return c, nil
		}
		select {
		case <-ctx.Done():
			c.Close()
			return nil, fmt.Errorf("coordclient: ensemble %v not reachable: %w (last error: %v)", endpoints, ctx.Err(), lastErr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Close ends all registrations' keepalives (their keys expire after their TTL) and closes
// the connection.
func (c *Client) Close() error {
	c.cancel()
	return c.cli.Close()
}

// Etcd gives direct access to the etcd client for anything this package does not wrap.
func (c *Client) Etcd() *clientv3.Client { return c.cli }

func ttlSeconds(ttl time.Duration) int64 {
	return max(1, int64(math.Ceil(ttl.Seconds())))
}

// Registration is an ephemeral key: it lives as long as its lease is kept alive.
type Registration struct {
	c      *Client
	key    string
	lease  clientv3.LeaseID
	cancel context.CancelFunc
	done   chan struct{}
}

// Register writes key=value bound to a lease with the given TTL (whole seconds, at least
// 1 s) and keeps the lease alive until r.Close, c.Close or ctx is done. When the process
// dies the key vanishes within the TTL, like a ZooKeeper ephemeral node. An existing value is
// overwritten, so a restarted process can re-register before its old lease expires.
// Pass a ctx that lives as long as the registration should (not a request timeout): when
// it ends, keepalives stop and the key expires.
func (c *Client) Register(ctx context.Context, key string, value []byte, ttl time.Duration) (*Registration, error) {
	g, err := c.cli.Grant(ctx, ttlSeconds(ttl))
	if err != nil {
		return nil, fmt.Errorf("coordclient: register %s: grant lease: %w", key, err)
	}
	if _, err := c.cli.Put(ctx, key, string(value), clientv3.WithLease(g.ID)); err != nil {
		c.revoke(g.ID)
		return nil, fmt.Errorf("coordclient: register %s: %w", key, err)
	}
	kctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(c.ctx, cancel)
	ka, err := c.cli.KeepAlive(kctx, g.ID)
	if err != nil {
		cancel()
		c.revoke(g.ID)
		return nil, fmt.Errorf("coordclient: register %s: keepalive: %w", key, err)
	}
	r := &Registration{c: c, key: key, lease: g.ID, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer stop()
		defer close(r.done)
		// The channel closes when the lease expires, is revoked or kctx ends.
		for range ka {
		}
	}()
	return r, nil
}

func (c *Client) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c.cli.Revoke(ctx, id)
}

// Key is the registered key.
func (r *Registration) Key() string { return r.key }

// Lease is the lease the key is bound to; other keys can be attached to it with
// clientv3.WithLease.
func (r *Registration) Lease() clientv3.LeaseID { return r.lease }

// Done is closed when the lease is no longer kept alive: lost (expired on the server),
// revoked, or its context ended.
func (r *Registration) Done() <-chan struct{} { return r.done }

// Close revokes the lease: the key disappears at once.
func (r *Registration) Close(ctx context.Context) error {
	r.cancel()
	if _, err := r.c.cli.Revoke(ctx, r.lease); err != nil {
		return fmt.Errorf("coordclient: unregister %s: %w", r.key, err)
	}
	return nil
}

// Get returns the value and ModRevision of key; an absent key gives nil, 0, nil.
func (c *Client) Get(ctx context.Context, key string) ([]byte, int64, error) {
	resp, err := c.cli.Get(ctx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("coordclient: get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision, nil
}

// List returns every key under prefix and the store revision the listing reflects; watching
// from that revision + 1 misses nothing.
func (c *Client) List(ctx context.Context, prefix string) (map[string][]byte, int64, error) {
	resp, err := c.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("coordclient: list %s: %w", prefix, err)
	}
	out := make(map[string][]byte, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = kv.Value
	}
	return out, resp.Header.Revision, nil
}

// WatchEvent is one change under a watched prefix. Rev is the revision of the change.
type WatchEvent struct {
	Key     string
	Value   []byte
	Deleted bool
	Rev     int64
}

// Watch streams changes under prefix starting at fromRev (0: from now) until ctx is done.
// Member failures are handled inside: the watch resumes on another member after the last
// delivered revision, so no event is lost or repeated. The channel also closes if fromRev has
// been compacted away; the caller should then List and watch again from the listed revision.
func (c *Client) Watch(ctx context.Context, prefix string, fromRev int64) <-chan WatchEvent {
	out := make(chan WatchEvent, 64)
	go func() {
		defer close(out)
		next := fromRev
		for ctx.Err() == nil {
			opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCreatedNotify()}
			if next > 0 {
				opts = append(opts, clientv3.WithRev(next))
			}
			// RequireLeader makes a member cut off from the quorum end the watch instead of
			// silently serving nothing; the loop then resumes elsewhere.
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			for resp := range c.cli.Watch(wctx, prefix, opts...) {
				if resp.CompactRevision != 0 {
					cancel()
					return
				}
				if resp.Err() != nil {
					break
				}
				if next == 0 {
					next = resp.Header.Revision + 1
				}
				for _, ev := range resp.Events {
					we := WatchEvent{
						Key:     string(ev.Kv.Key),
						Value:   ev.Kv.Value,
						Deleted: ev.Type == clientv3.EventTypeDelete,
						Rev:     ev.Kv.ModRevision,
					}
					select {
					case out <- we:
					case <-ctx.Done():
						cancel()
						return
					}
					next = ev.Kv.ModRevision + 1
				}
			}
			cancel()
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return out
}

// CAS puts value at key only if the key's ModRevision is still expectRev (0: the key must not
// exist). On success newRev is the key's new ModRevision; when someone else changed the key
// first, ok is false and newRev is the key's current ModRevision (0 if it is gone).
func (c *Client) CAS(ctx context.Context, key string, expectRev int64, value []byte) (bool, int64, error) {
	resp, err := c.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", expectRev)).
		Then(clientv3.OpPut(key, string(value))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return false, 0, fmt.Errorf("coordclient: cas %s: %w", key, err)
	}
	if resp.Succeeded {
		return true, resp.Header.Revision, nil
	}
	if rr := resp.Responses[0].GetResponseRange(); rr != nil && len(rr.Kvs) > 0 {
		return false, rr.Kvs[0].ModRevision, nil
	}
	return false, 0, nil
}

// Delete removes key; deleting an absent key is not an error.
func (c *Client) Delete(ctx context.Context, key string) error {
	if _, err := c.cli.Delete(ctx, key); err != nil {
		return fmt.Errorf("coordclient: delete %s: %w", key, err)
	}
	return nil
}
