package kafka

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	dlog "github.com/drover/drover/broker/log"
)

func kcat(t *testing.T) string {
	p, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("!!! kcat NOT INSTALLED: skipping the kcat compatibility tests (apt-get install kcat) !!!")
	}
	return p
}

func runKcat(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %v: %v\nstderr: %s", args, err, errb.String())
	}
	return out.String()
}

func TestKcatCompressionRoundTrip(t *testing.T) {
	kcat(t)
	s := startServer(t, t.TempDir())
	codecs := map[string]int8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
	for name, id := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := "kcat-" + name
			var in strings.Builder
			for i := 0; i < 200; i++ {
				fmt.Fprintf(&in, "message %d %s\n", i, strings.Repeat("x", 50))
			}
			runKcat(t, in.String(), "-b", s.Addr(), "-P", "-t", topic, "-p", "0", "-z", name)
			p := s.topics.get(topic, 0)
			if p == nil {
				t.Fatal("partition not created")
			}
			data, err := p.log.Read(0, 1<<20, p.hw.Load())
			if err != nil || len(data) == 0 {
				t.Fatalf("read log: %v", err)
			}
			batches, _ := dlog.SplitBatches(data)
			for _, b := range batches {
				h, _ := dlog.ParseHeader(b)
				if h.Compression() != id {
					t.Fatalf("stored batch codec %d, want %d (%s)", h.Compression(), id, name)
				}
			}
			out := runKcat(t, "", "-b", s.Addr(), "-C", "-t", topic, "-o", "beginning", "-e", "-q")
			if out != in.String() {
				t.Fatalf("consumed %d bytes, produced %d", len(out), in.Len())
			}
		})
	}
	meta := runKcat(t, "", "-b", s.Addr(), "-L")
	if !strings.Contains(meta, "1 brokers:") || !strings.Contains(meta, `topic "kcat-zstd" with 3 partitions`) {
		t.Fatalf("kcat -L:\n%s", meta)
	}
}

func TestKcatGroup(t *testing.T) {
	kcat(t)
	s := startServer(t, t.TempDir())
	var in strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&in, "g%d\n", i)
	}
	runKcat(t, in.String(), "-b", s.Addr(), "-P", "-t", "kg")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kcat(t), "-b", s.Addr(), "-G", "kcat-group", "-o", "beginning", "-e", "-q", "kg")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat -G: %v\n%s", err, errb.String())
	}
	got := strings.Count(out.String(), "\n")
	if got != 50 {
		t.Fatalf("kcat -G consumed %d lines, want 50\nstderr: %s", got, errb.String())
	}
	// The group committed its offsets.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var sum int64
		for k, c := range s.groups.offsets.all("kcat-group") {
			if k.topic == "kg" {
				sum += c.offset
			}
		}
		if sum == 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("committed offsets sum %d, want 50", sum)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
