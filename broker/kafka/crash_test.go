package kafka

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitPort(t *testing.T, addr string) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("broker at %s never came up", addr)
}

// TestCrashSafety kills the broker process with SIGKILL during an acks=1
// produce load, restarts it, and checks every acknowledged record is there.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the broker binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "drover-broker")
	build := exec.Command("go", "build", "-o", bin, "github.com/drover/drover/broker/cmd/drover-broker")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	props := filepath.Join(dir, "server.properties")
	os.WriteFile(props, []byte(fmt.Sprintf("broker.id=1\nlisteners=PLAINTEXT://%s\nlog.dirs=%s\nnum.partitions=4\nlog.segment.bytes=262144\nadmin.listener=none\n", addr, filepath.Join(dir, "logs"))), 0o644)
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "--config", props)
		logf, _ := os.OpenFile(filepath.Join(dir, "broker.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitPort(t, addr)
		return cmd
	}
	cmd := start()

	type key struct {
		p   int32
		off int64
	}
	var mu sync.Mutex
	acked := map[key]string{}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation(), kgo.DefaultProduceTopic("crash"),
		kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite(), kgo.ProducerLinger(time.Millisecond),
		kgo.RecordRetries(0), kgo.ProduceRequestTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			v := fmt.Sprintf("value-%d-%0200d", i, i)
			cl.Produce(ctx, &kgo.Record{Value: []byte(v)}, func(r *kgo.Record, err error) {
				if err == nil {
					mu.Lock()
					acked[key{r.Partition, r.Offset}] = string(r.Value)
					mu.Unlock()
				}
			})
		}
	}()
	// Let the load run until a good number of records are acknowledged.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n > 20000 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	cancel()
	wg.Wait()
	cl.Close()
	mu.Lock()
	want := make(map[key]string, len(acked))
	for k, v := range acked {
		want[k] = v
	}
	mu.Unlock()
	if len(want) == 0 {
		t.Fatal("nothing acknowledged")
	}
	t.Logf("%d records acknowledged before SIGKILL", len(want))

	cmd = start()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	c2, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("crash"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	cctx, ccancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer ccancel()
	found := 0
	for found < len(want) {
		fs := c2.PollFetches(cctx)
		if cctx.Err() != nil {
			break
		}
		fs.EachRecord(func(r *kgo.Record) {
			if v, ok := want[key{r.Partition, r.Offset}]; ok {
				if v != string(r.Value) {
					t.Errorf("partition %d offset %d: value %q, acked %q", r.Partition, r.Offset, r.Value, v)
				}
				found++
			}
		})
	}
	if found != len(want) {
		t.Fatalf("found %d of %d acknowledged records after restart", found, len(want))
	}
}
