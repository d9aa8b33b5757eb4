package coordinator_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drover/drover/broker/coordclient"
	"github.com/drover/drover/broker/coordclient/coordtest"
	"github.com/drover/drover/broker/coordinator"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// fourLetter sends a word and reads until the server closes, like `echo srvr | nc host port`.
func fourLetter(t *testing.T, addr, word string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, word+"\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("%s: %v", word, err)
	}
	return string(b)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var srvrRE = regexp.MustCompile(`^Zookeeper version: 3\.8\.4-drover-test, built on \d{4}-\d\d-\d\d \d\d:\d\d UTC
Latency min/avg/max: 0/0\.0/0
Received: \d+
Sent: \d+
Connections: \d+
Outstanding: 0
Zxid: 0x[0-9a-f]+
Mode: (leader|follower|standalone)
Node count: \d+
(Proposal sizes last/min/max: -1/-1/-1
)?$`)

func mode(t *testing.T, addr string) string {
	out := fourLetter(t, addr, "srvr")
	m := srvrRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("srvr output does not match ZooKeeper's format:\n%s", out)
	}
	return m[1]
}

func mntr(t *testing.T, addr string) map[string]string {
	t.Helper()
	out := fourLetter(t, addr, "mntr")
	kv := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		k, v, ok := strings.Cut(line, "\t")
		if !ok || !strings.HasPrefix(k, "zk_") {
			t.Fatalf("mntr line %q is not zk_key<TAB>value", line)
		}
		kv[k] = v
	}
	return kv
}

func TestStandaloneFourLetterWords(t *testing.T) {
	c := coordtest.StartCluster(t, 1)
	addr := c.Endpoints()[0]

	if got := fourLetter(t, addr, "ruok"); got != "imok" {
		t.Fatalf("ruok = %q, want imok", got)
	}
	if got := fourLetter(t, addr, "isro"); got != "rw" {
		t.Fatalf("isro = %q", got)
	}
	if got := fourLetter(t, addr, "dump"); got != "dump is not executed because it is not in the whitelist.\n" {
		t.Fatalf("dump = %q", got)
	}

	// Node and ephemeral counts come from the store.
	cl := dial(t, c.Endpoints())
	ctx := ctxT(t)
	if _, err := cl.Register(ctx, "/brokers/ids/1", []byte("x"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cl.CAS(ctx, "/cluster/id", 0, []byte("id")); err != nil {
		t.Fatal(err)
	}
	if m := mode(t, addr); m != "standalone" {
		t.Fatalf("Mode = %s, want standalone", m)
	}
	out := fourLetter(t, addr, "srvr")
	if !strings.Contains(out, "\nNode count: 2\n") {
		t.Fatalf("srvr node count:\n%s", out)
	}
	kv := mntr(t, addr)
	want := map[string]string{"zk_server_state": "standalone", "zk_znode_count": "2", "zk_ephemerals_count": "1", "zk_quorum_size": "1"}
	for k, v := range want {
		if kv[k] != v {
			t.Errorf("mntr %s = %q, want %q", k, kv[k], v)
		}
	}
	keys := []string{"zk_version", "zk_server_state", "zk_avg_latency", "zk_max_latency", "zk_min_latency",
		"zk_packets_received", "zk_packets_sent", "zk_num_alive_connections", "zk_outstanding_requests",
		"zk_znode_count", "zk_watch_count", "zk_ephemerals_count", "zk_approximate_data_size",
		"zk_open_file_descriptor_count", "zk_max_file_descriptor_count"}
	for _, k := range keys {
		if _, ok := kv[k]; !ok {
			t.Errorf("mntr lacks %s", k)
		}
	}
	if n := kv["zk_num_alive_connections"]; n == "0" {
		t.Errorf("zk_num_alive_connections = 0 with a client connected")
	}
	stat := fourLetter(t, addr, "stat")
	if !strings.HasPrefix(stat, "Zookeeper version: ") || !strings.Contains(stat, "\nClients:\n /127.0.0.1:") || !strings.Contains(stat, "\nMode: standalone\n") {
		t.Fatalf("stat:\n%s", stat)
	}

	// etcd's own HTTP endpoints still work through the shared port.
	resp, err := http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("etcd /health via client port: %s", resp.Status)
	}

	srv := httptest.NewServer(c.Members[0].AdminHandler())
	defer srv.Close()
	body, code := get(t, srv.URL+"/healthz")
	if code != 200 || body != "ok" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	body, code = get(t, srv.URL+"/metrics")
	if code != 200 || !strings.Contains(body, "drover_coordinator_is_leader 1") || !strings.Contains(body, "etcd_server_has_leader") {
		t.Fatalf("/metrics = %d, missing metrics", code)
	}
	c.Members[0].Stop()
	body, code = get(t, srv.URL+"/healthz")
	if code != 503 || body != "shutting down\n" {
		t.Fatalf("/healthz after stop = %d %q", code, body)
	}
}

func get(t *testing.T, url string) (string, int) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func modes(t *testing.T, c *coordtest.Cluster) []string {
	var ms []string
	for _, m := range c.Members {
		select {
		case <-m.Stopped():
			continue
		default:
		}
		ms = append(ms, mode(t, m.ClientAddr()))
	}
	slices.Sort(ms)
	return ms
}

func TestThreeMembersOneLeader(t *testing.T) {
	c := coordtest.StartCluster(t, 3)
	ms := modes(t, c)
	if !slices.Equal(ms, []string{"follower", "follower", "leader"}) {
		t.Fatalf("modes = %v, want one leader and two followers", ms)
	}
	leader := c.Members[c.Leader()]
	// Raft streams come up shortly after the election; poll.
	waitFor(t, 5*time.Second, "two synced followers", func() bool {
		return mntr(t, leader.ClientAddr())["zk_synced_followers"] == "2"
	})
	kv := mntr(t, leader.ClientAddr())
	if kv["zk_server_state"] != "leader" || kv["zk_quorum_size"] != "3" || kv["zk_peer_state"] != "leading - broadcast" {
		t.Fatalf("leader mntr = %v", kv)
	}
	// Every member serves the etcd API; a write through one is visible through another.
	a, b := dial(t, c.Endpoints()[:1]), dial(t, c.Endpoints()[2:])
	ctx := ctxT(t)
	if _, _, err := a.CAS(ctx, "/k", 0, []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, _, err := b.Get(ctx, "/k"); err != nil || string(v) != "v" {
		t.Fatalf("read through another member = %q %v", v, err)
	}
}

// TestLeaderKilledFailover: a crashed leader is replaced within 1.5 s (ZooKeeper 3.8 on this
// machine: median 0.52 s).
func TestLeaderKilledFailover(t *testing.T) {
	var took []time.Duration
	rounds := 3
	if n, err := strconv.Atoi(os.Getenv("DROVER_FAILOVER_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	for range rounds {
		c := coordtest.StartCluster(t, 3)
		old := c.Leader()
		if old < 0 {
			t.Fatal("no leader")
		}
		start := time.Now()
		c.Members[old].Kill()
		waitFor(t, 5*time.Second, "a new leader", func() bool {
			l := c.Leader()
			return l >= 0 && l != old
		})
		d := time.Since(start)
		took = append(took, d)
		ms := modes(t, c)
		if !slices.Equal(ms, []string{"follower", "leader"}) {
			t.Fatalf("modes after failover = %v", ms)
		}
	}
	slices.Sort(took)
	t.Logf("leader killed -> new leader: %v (median %v)", took, took[len(took)/2])
	if took[len(took)-1] > 1500*time.Millisecond {
		t.Fatalf("failover took %v, want < 1.5s", took[len(took)-1])
	}
}

// TestGracefulStopHandsOver: stopping the leader moves leadership first, so writes pause for
// a handover, not an election timeout.
func TestGracefulStopHandsOver(t *testing.T) {
	// Writers connected to the other members measure the handover itself; writers connected
	// to every member, as brokers are, also pay for moving off the stopping member.
	t.Run("survivors", func(t *testing.T) { testHandover(t, false) })
	t.Run("all", func(t *testing.T) { testHandover(t, true) })
}

func testHandover(t *testing.T, all bool) {
	c := coordtest.StartCluster(t, 3)
	old := c.Leader()
	ctx := ctxT(t)
	var eps []string
	for i, m := range c.Members {
		if i != old || all {
			eps = append(eps, m.ClientAddr())
		}
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	stopped := make(chan time.Duration, 1)
	var maxGap time.Duration
	last := time.Now()
	stopAt := time.Now().Add(300 * time.Millisecond)
	var stopping bool
	for i := 0; ; i++ {
		if !stopping && time.Now().After(stopAt) {
			stopping = true
			go func() {
				s := time.Now()
				c.Members[old].Stop()
				stopped <- time.Since(s)
			}()
		}
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cli.Put(pctx, "/tick", fmt.Sprint(i))
		cancel()
		if err == nil {
			now := time.Now()
			maxGap = max(maxGap, now.Sub(last))
			last = now
		}
		if stopping && len(stopped) > 0 && time.Since(stopAt) > 500*time.Millisecond {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("writer timed out")
		}
	}
	stopTook := <-stopped
	nl := c.Leader()
	if nl < 0 || nl == old {
		t.Fatalf("leader after graceful stop = %d (old %d)", nl, old)
	}
	_, el := c.Configs[0].Timing()
	t.Logf("graceful stop of the leader took %v; longest write gap %v (election timeout %v)", stopTook.Round(time.Millisecond), maxGap.Round(time.Millisecond), el)
	if maxGap >= el {
		t.Fatalf("writes paused %v, not shorter than an election timeout (%v): leadership was not handed over", maxGap, el)
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startOne(t *testing.T, text string, myid uint64) (*coordinator.Member, error) {
	t.Helper()
	cfg, _, err := coordinator.Parse("zoo.cfg", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MyID = myid
	m, err := coordinator.Start(cfg, coordinator.Options{EtcdLogger: zap.NewNop(), Logger: discard()})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.WaitReady(ctx); err != nil {
		m.Kill()
		t.Fatal(err)
	}
	return m, nil
}

func TestDataDirOwnership(t *testing.T) {
	dir := t.TempDir()
	p1, p2 := freePort(t), freePort(t)
	base := fmt.Sprintf("dataDir=%s\nclientPortAddress=127.0.0.1\nclientPort=0\n", dir)
	one := base + fmt.Sprintf("server.1=127.0.0.1:%d:3888\n", p1)
	m, err := startOne(t, one, 1)
	if err != nil {
		t.Fatal(err)
	}
	cl := dial(t, []string{m.ClientAddr()})
	if _, _, err := cl.CAS(ctxT(t), "/keep", 0, []byte("me")); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	m.Stop()

	// Restart of the same member keeps its data.
	m, err = startOne(t, one, 1)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	cl = dial(t, []string{m.ClientAddr()})
	if v, _, err := cl.Get(ctxT(t), "/keep"); err != nil || string(v) != "me" {
		t.Fatalf("after restart /keep = %q %v", v, err)
	}
	cl.Close()
	m.Stop()

	two := base + fmt.Sprintf("server.1=127.0.0.1:%d:3888\nserver.2=127.0.0.1:%d:3888\n", p1, p2)
	cases := []struct {
		name, text string
		myid       uint64
		want       string
	}{
		{"other myid", two, 2, "belongs to myid 1"},
		{"other cluster", two, 1, "belongs to cluster"},
		{"other cluster hint", two, 1, "drover.clusterToken="},
	}
	for _, tc := range cases {
		_, err := startOne(t, tc.text, tc.myid)
		var dde *coordinator.DataDirError
		if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &dde) {
			t.Errorf("%s: err = %v, want a DataDirError with %q", tc.name, err, tc.want)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "etcd", "member")); err != nil {
		t.Fatalf("data dir damaged by refused starts: %v", err)
	}

	// etcd data without a marker, and ZooKeeper's own data, are not adopted.
	foreign := t.TempDir()
	os.MkdirAll(filepath.Join(foreign, "etcd", "member"), 0o700)
	if _, err := startOne(t, fmt.Sprintf("dataDir=%s\nclientPortAddress=127.0.0.1\nclientPort=0\nserver.1=127.0.0.1:%d:3888\n", foreign, p1), 1); err == nil || !strings.Contains(err.Error(), "no drover-coordinator.json") {
		t.Errorf("foreign etcd data: err = %v", err)
	}
	zk := t.TempDir()
	os.MkdirAll(filepath.Join(zk, "version-2"), 0o700)
	if _, err := startOne(t, fmt.Sprintf("dataDir=%s\nclientPortAddress=127.0.0.1\nclientPort=0\nserver.1=127.0.0.1:%d:3888\n", zk, p1), 1); err == nil || !strings.Contains(err.Error(), "Apache ZooKeeper data") {
		t.Errorf("zookeeper data: err = %v", err)
	}
}

func TestNotServingWithoutQuorum(t *testing.T) {
	c := coordtest.StartCluster(t, 3)
	srv := httptest.NewServer(c.Members[0].AdminHandler())
	defer srv.Close()
	c.Members[1].Kill()
	c.Members[2].Kill()
	addr := c.Members[0].ClientAddr()
	const notServing = "This ZooKeeper instance is not currently serving requests\n"
	waitFor(t, 5*time.Second, "the lone member to notice it has no quorum", func() bool {
		return fourLetter(t, addr, "srvr") == notServing
	})
	if got := fourLetter(t, addr, "mntr"); got != notServing {
		t.Fatalf("mntr without quorum = %q", got)
	}
	if got := fourLetter(t, addr, "ruok"); got != "imok" {
		t.Fatalf("ruok without quorum = %q", got)
	}
	body, code := get(t, srv.URL+"/healthz")
	if code != 503 || body != "cluster has no leader\n" {
		t.Fatalf("/healthz without quorum = %d %q", code, body)
	}
}
