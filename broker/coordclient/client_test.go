package coordclient_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/broker/coordclient"
	"github.com/drover/drover/broker/coordclient/coordtest"
)

func dial(t *testing.T, eps []string) *coordclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := coordclient.Dial(ctx, eps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPrimitives(t *testing.T) {
	eps := coordtest.Start(t, 1)
	c := dial(t, eps)
	ctx := ctxT(t)

	v, rev, err := c.Get(ctx, "/missing")
	if err != nil || v != nil || rev != 0 {
		t.Fatalf("Get absent = %q %d %v", v, rev, err)
	}
	ok, rev1, err := c.CAS(ctx, "/cluster/id", 0, []byte("abc"))
	if err != nil || !ok || rev1 == 0 {
		t.Fatalf("CAS create = %v %d %v", ok, rev1, err)
	}
	ok, cur, err := c.CAS(ctx, "/cluster/id", 0, []byte("other"))
	if err != nil || ok || cur != rev1 {
		t.Fatalf("CAS create again = %v %d %v, want false %d", ok, cur, err, rev1)
	}
	ok, rev2, err := c.CAS(ctx, "/cluster/id", rev1, []byte("def"))
	if err != nil || !ok || rev2 <= rev1 {
		t.Fatalf("CAS update = %v %d %v", ok, rev2, err)
	}
	if ok, _, _ := c.CAS(ctx, "/cluster/id", rev1, []byte("stale")); ok {
		t.Fatal("CAS with stale revision succeeded")
	}
	v, rev, err = c.Get(ctx, "/cluster/id")
	if err != nil || string(v) != "def" || rev != rev2 {
		t.Fatalf("Get = %q %d %v", v, rev, err)
	}

	// List, then watch from the listed revision: nothing between is lost.
	if _, err := c.Register(ctx, "/brokers/ids/1", []byte("b1"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	m, lrev, err := c.List(ctx, "/brokers/ids/")
	if err != nil || len(m) != 1 || string(m["/brokers/ids/1"]) != "b1" {
		t.Fatalf("List = %v %v", m, err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	events := c.Watch(wctx, "/brokers/ids/", lrev+1)
	r2, err := c.Register(ctx, "/brokers/ids/2", []byte("b2"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, events)
	if ev.Key != "/brokers/ids/2" || string(ev.Value) != "b2" || ev.Deleted || ev.Rev <= lrev {
		t.Fatalf("event = %+v", ev)
	}
	if err := r2.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events); ev.Key != "/brokers/ids/2" || !ev.Deleted {
		t.Fatalf("event after unregister = %+v", ev)
	}
	select {
	case <-r2.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Registration.Done not closed after Close")
	}
	if err := c.Delete(ctx, "/cluster/id"); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := c.Get(ctx, "/cluster/id"); v != nil {
		t.Fatal("key survived Delete")
	}
}

func next(t *testing.T, ch <-chan coordclient.WatchEvent) coordclient.WatchEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event")
	}
	panic("unreachable")
}

func TestEphemeralVanishesWhenSessionDies(t *testing.T) {
	eps := coordtest.Start(t, 3)
	owner := dial(t, eps)
	observer := dial(t, eps)
	ctx := ctxT(t)
	const ttl = 2 * time.Second
	if _, err := owner.Register(ctx, "/brokers/ids/7", []byte("x"), ttl); err != nil {
		t.Fatal(err)
	}
	// Closing the client stops keepalives without revoking: exactly what a crash looks like
	// to the ensemble.
	died := time.Now()
	owner.Close()
	for {
		v, _, err := observer.Get(ctx, "/brokers/ids/7")
		if err != nil {
			t.Fatal(err)
		}
		if v == nil {
			break
		}
		if time.Since(died) > ttl+time.Second {
			t.Fatalf("ephemeral key still present %v after its owner died (ttl %v)", time.Since(died), ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("ephemeral key gone %v after its session died (ttl %v)", time.Since(died).Round(time.Millisecond), ttl)
}

func TestElection(t *testing.T) {
	eps := coordtest.Start(t, 3)
	a, b := dial(t, eps), dial(t, eps)
	ctx := ctxT(t)
	if _, err := a.Leader(ctx, "/controller"); !errors.Is(err, coordclient.ErrNoLeader) {
		t.Fatalf("Leader before campaign = %v, want ErrNoLeader", err)
	}
	la, err := a.Campaign(ctx, "/controller", []byte("1"), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := b.Leader(ctx, "/controller"); err != nil || string(v) != "1" {
		t.Fatalf("Leader = %q %v", v, err)
	}
	won := make(chan *coordclient.Leadership, 1)
	go func() {
		lb, err := b.Campaign(ctx, "/controller", []byte("2"), 2*time.Second)
		if err != nil {
			t.Error(err)
		}
		won <- lb
	}()
	select {
	case <-won:
		t.Fatal("second candidate won while the first leads")
	case <-time.After(300 * time.Millisecond):
	}
	if err := la.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	var lb *coordclient.Leadership
	select {
	case lb = <-won:
	case <-time.After(10 * time.Second):
		t.Fatal("second candidate did not take over after Resign")
	}
	if lb.Rev() <= la.Rev() {
		t.Fatalf("leadership revision did not increase: %d then %d", la.Rev(), lb.Rev())
	}
	select {
	case <-la.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("resigned Leadership.Done not closed")
	}
	if v, err := a.Leader(ctx, "/controller"); err != nil || string(v) != "2" {
		t.Fatalf("Leader after handover = %q %v", v, err)
	}
	// A leader whose client dies loses the post within its TTL.
	start := time.Now()
	b.Close()
	for {
		_, err := a.Leader(ctx, "/controller")
		if errors.Is(err, coordclient.ErrNoLeader) {
			break
		}
		if time.Since(start) > 4*time.Second {
			t.Fatalf("dead leader still leads after %v", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWatchSurvivesMemberLoss: a watch resumes on another member after the last delivered
// revision: no event lost, none repeated.
func TestWatchSurvivesMemberLoss(t *testing.T) {
	c := coordtest.StartCluster(t, 3)
	w, writer := dial(t, c.Endpoints()), dial(t, c.Endpoints())
	ctx := ctxT(t)
	events := w.Watch(ctx, "/t/", 0)
	put := func(k string) {
		t.Helper()
		for {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			_, err := writer.Etcd().Put(pctx, "/t/"+k, k)
			cancel()
			if err == nil {
				return
			}
			if ctx.Err() != nil {
				t.Fatal(err)
			}
		}
	}
	// The watch is registered asynchronously; wait until it sees a first write.
	put("0")
	if ev := next(t, events); ev.Key != "/t/0" {
		t.Fatalf("first event %+v", ev)
	}
	want := []string{"/t/1", "/t/2", "/t/3", "/t/4"}
	put("1")
	// Cut every client connection so the watch must resume wherever it was, then lose a member.
	for _, m := range c.Members {
		m.DropClientConnections()
	}
	c.Members[c.Leader()].Kill()
	for _, k := range []string{"2", "3"} {
		put(k)
	}
	put("4")
	var got []string
	for range want {
		got = append(got, next(t, events).Key)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events after member loss = %v, want %v", got, want)
	}
	select {
	case ev := <-events:
		t.Fatalf("unexpected extra event %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestCampaignReturnsWhenCanceledWithoutQuorum: a candidate waiting for leadership must return
// when its context ends even if the coordinators lost quorum meanwhile (etcd's own Campaign
// resigns with the client's context then, which would block a broker's shutdown forever).
func TestCampaignReturnsWhenCanceledWithoutQuorum(t *testing.T) {
	c := coordtest.StartCluster(t, 3)
	leader, waiter := dial(t, c.Endpoints()), dial(t, c.Endpoints())
	if _, err := leader.Campaign(ctxT(t), "/e", []byte("1"), 2*time.Second); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctxT(t))
	res := make(chan error, 1)
	go func() {
		_, err := waiter.Campaign(ctx, "/e", []byte("2"), 2*time.Second)
		res <- err
	}()
	// let the waiter queue behind the leader, then take the quorum away
	time.Sleep(300 * time.Millisecond)
	for i := 0; i < 2; i++ {
		c.Members[(c.Leader()+1)%3].Kill()
		if l := c.Leader(); l >= 0 {
			c.Members[l].Kill()
		}
	}
	cancel()
	select {
	case err := <-res:
		if err == nil {
			t.Fatal("a canceled campaign reported leadership")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Campaign did not return 10 s after its context was canceled (no quorum)")
	}
}
