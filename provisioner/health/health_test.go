package health

import (
	"context"
	"net"
	"strings"
	"testing"
)

func TestParseSrvr(t *testing.T) {
	reply := "Zookeeper version: 3.8.4-drover, built on 2026-01-01\nLatency min/avg/max: 0/0.0/0\nReceived: 3\nSent: 3\nConnections: 1\nOutstanding: 0\nZxid: 0x1f\nMode: follower\nNode count: 5\n"
	mode, zxid, err := ParseSrvr(reply)
	if err != nil || mode != "follower" || zxid != 0x1f {
		t.Fatalf("got %q %x %v", mode, zxid, err)
	}
	if _, _, err := ParseSrvr("This ZooKeeper instance is not currently serving requests\n"); err == nil {
		t.Fatal("a member without quorum parsed as healthy")
	}
}

// fake4lw serves canned replies per address, the way real members would.
func fake4lw(t *testing.T, replies map[string]string) (Dialer, map[string]string) {
	addrs := map[string]string{}
	for name, reply := range replies {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		addrs[name] = ln.Addr().String()
		go func(reply string) {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				buf := make([]byte, 4)
				_, _ = c.Read(buf)
				if string(buf) == "mntr" {
					_, _ = c.Write([]byte("zk_version\t3.8\nzk_synced_followers\t2\n"))
				} else {
					_, _ = c.Write([]byte(reply))
				}
				c.Close()
			}
		}(reply)
	}
	var d net.Dialer
	return d.DialContext, addrs
}

func TestCheckQuorum(t *testing.T) {
	dial, addrs := fake4lw(t, map[string]string{"a": "Mode: leader\nZxid: 0x5\n", "b": "Mode: follower\n", "c": "Mode: follower\n"})
	targets := []Target{{Host: "a", ID: 1, Addr: addrs["a"]}, {Host: "b", ID: 2, Addr: addrs["b"]}, {Host: "c", ID: 3, Addr: addrs["c"]}}
	q := CheckQuorum(context.Background(), dial, targets)
	if q.Leader != "a" || len(q.Problems) != 0 {
		t.Fatalf("healthy quorum judged %+v", q)
	}
	dial2, addrs2 := fake4lw(t, map[string]string{"a": "Mode: leader\n", "b": "Mode: leader\n"})
	targets = []Target{{Host: "a", Addr: addrs2["a"]}, {Host: "b", Addr: addrs2["b"]}, {Host: "c", Addr: "127.0.0.1:1"}}
	q = CheckQuorum(context.Background(), dial2, targets)
	joined := strings.Join(q.Problems, "\n")
	if !strings.Contains(joined, "more than one coordinator claims to lead") || !strings.Contains(joined, "coordinator c:") {
		t.Fatalf("split brain and a dead member not both reported: %s", joined)
	}
}
