package kafka

// More kcat (librdkafka) coverage on top of kcat_test.go: keys and headers,
// offsets for timestamps (-Q, -o s@ts), relative offsets (-o -N, -o end),
// a two-member balanced consumer group with resume, and
// api.version.request=false.

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func TestKcatKeysHeaders(t *testing.T) {
	kcat(t)
	s := startServer(t, t.TempDir())
	runKcat(t, "k1:v1\nk2:v2\n:nokey\n", "-b", s.Addr(), "-P", "-t", "kh", "-p", "1", "-K:", "-H", "a=1", "-H", "b=two")
	out := runKcat(t, "", "-b", s.Addr(), "-C", "-t", "kh", "-p", "1", "-o", "beginning", "-e", "-q",
		"-f", "%k|%s|%h|%p|%o|%K|%S\n")
	want := "k1|v1|a=1,b=two|1|0|2|2\nk2|v2|a=1,b=two|1|1|2|2\n|nokey|a=1,b=two|1|2|0|5\n"
	if out != want {
		t.Fatalf("kcat -C keys/headers:\n%s\nwant:\n%s", out, want)
	}
	// (kcat -K sends an empty key, not a null one, for ":value".)
	// Keys read back through another client match byte for byte.
	cl := client(t, s, kgo.ConsumeTopics("kh"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < 3 {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, fs.Records()...)
	}
	if string(recs[0].Key) != "k1" || len(recs[2].Key) != 0 || len(recs[0].Headers) != 2 || recs[0].Headers[1].Key != "b" || string(recs[0].Headers[1].Value) != "two" {
		t.Fatalf("records %+v", recs)
	}
}

func TestKcatOffsets(t *testing.T) {
	kcat(t)
	s := startServer(t, t.TempDir())
	cl := client(t, s, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Explicit timestamps: offset i has timestamp 1000*(i+1).
	for i := 0; i < 10; i++ {
		r := &kgo.Record{Topic: "ko", Partition: 0, Value: []byte(fmt.Sprint("m", i)), Timestamp: time.UnixMilli(int64(1000 * (i + 1)))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		ts   string
		want string
	}{{"0", "0"}, {"1000", "0"}, {"1500", "1"}, {"10000", "9"}, {"10001", "-1"}, {"-1", "10"}, {"-2", "0"}} {
		out := runKcat(t, "", "-b", s.Addr(), "-Q", "-t", "ko:0:"+tc.ts)
		if strings.TrimSpace(out) != "ko [0] offset "+tc.want {
			t.Errorf("kcat -Q ko:0:%s = %q, want offset %s", tc.ts, out, tc.want)
		}
	}
	// Several partitions in one query; empty partitions have no offset for a time.
	out := runKcat(t, "", "-b", s.Addr(), "-Q", "-t", "ko:0:5000", "-t", "ko:1:5000", "-t", "ko:2:-1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	sort.Strings(lines)
	if strings.Join(lines, ";") != "ko [0] offset 4;ko [1] offset -1;ko [2] offset 0" {
		t.Fatalf("kcat -Q several partitions: %q", out)
	}
	consume := func(off string) string {
		return runKcat(t, "", "-b", s.Addr(), "-C", "-t", "ko", "-p", "0", "-o", off, "-e", "-q")
	}
	if got := consume("-3"); got != "m7\nm8\nm9\n" {
		t.Fatalf("-o -3: %q", got)
	}
	if got := consume("end"); got != "" {
		t.Fatalf("-o end: %q", got)
	}
	if got := consume("8"); got != "m8\nm9\n" {
		t.Fatalf("-o 8: %q", got)
	}
	if got := consume("s@8500"); got != "m8\nm9\n" {
		t.Fatalf("-o s@8500: %q", got)
	}
	if got := consume("beginning"); strings.Count(got, "\n") != 10 {
		t.Fatalf("-o beginning: %q", got)
	}
	// -o -N larger than the partition starts at the beginning.
	if got := consume("-50"); strings.Count(got, "\n") != 10 {
		t.Fatalf("-o -50: %q", got)
	}
}

// TestKcatNoApiVersionRequest: with api.version.request=false librdkafka
// 2.0 still probes ApiVersions (it only falls back on failure), so the
// broker.version.fallback tables are not exercised; the flag must still work.
func TestKcatNoApiVersionRequest(t *testing.T) {
	kcat(t)
	s := startServer(t, t.TempDir())
	for _, fb := range []string{"0.10.0", "2.1.0"} {
		x := []string{"-X", "api.version.request=false", "-X", "broker.version.fallback=" + fb}
		runKcat(t, "a\nb\n", append([]string{"-b", s.Addr(), "-P", "-t", "nav", "-p", "0"}, x...)...)
		out := runKcat(t, "", append([]string{"-b", s.Addr(), "-C", "-t", "nav", "-p", "0", "-o", "-2", "-e", "-q"}, x...)...)
		if out != "a\nb\n" {
			t.Fatalf("fallback %s: %q", fb, out)
		}
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func describeGroup(t *testing.T, cl *kgo.Client, group string) kmsg.DescribeGroupsResponseGroup {
	t.Helper()
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil || len(resp.Groups) != 1 {
		t.Fatalf("describe groups: %v", err)
	}
	return resp.Groups[0]
}

func TestKcatGroupTwoMembers(t *testing.T) {
	kp := kcat(t)
	s := startServer(t, t.TempDir())
	const group, topic = "kcat-two", "k2"
	adm := client(t, s)
	// Create the topic first so both members see 3 partitions.
	runKcat(t, "", "-b", s.Addr(), "-L", "-t", topic)

	type proc struct {
		cmd      *exec.Cmd
		out, err *lockedBuf
	}
	start := func() *proc {
		p := &proc{out: &lockedBuf{}, err: &lockedBuf{}}
		p.cmd = exec.Command(kp, "-b", s.Addr(), "-G", group, "-X", "auto.offset.reset=earliest", "-q", "-u", "-f", "%p:%s\n",
			"-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=300", topic)
		p.cmd.Stdout, p.cmd.Stderr = p.out, p.err
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.cmd.Process.Kill(); p.cmd.Wait() })
		return p
	}
	stop := func(p *proc) {
		p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- p.cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("kcat -G did not exit on SIGTERM\nstderr: %s", p.err.String())
		}
	}
	stable := func(n int) func() bool {
		return func() bool {
			g := describeGroup(t, adm, group)
			if g.State != "Stable" || len(g.Members) != n {
				return false
			}
			for _, m := range g.Members {
				var a kmsg.ConsumerMemberAssignment
				if a.ReadFrom(m.MemberAssignment) != nil || len(a.Topics) != 1 || len(a.Topics[0].Partitions) == 0 {
					return false
				}
			}
			return true
		}
	}
	m1 := start()
	pollUntil(t, "one member stable", 30*time.Second, stable(1))
	m2 := start()
	pollUntil(t, "two members stable", 30*time.Second, stable(2))
	g := describeGroup(t, adm, group)
	if g.ProtocolType != "consumer" || g.Protocol == "" {
		t.Fatalf("group %+v", g)
	}

	var in strings.Builder
	for i := 0; i < 60; i++ {
		fmt.Fprintf(&in, "key%d:v%d\n", i, i)
	}
	runKcat(t, in.String(), "-b", s.Addr(), "-P", "-t", topic, "-K:")
	lines := func(p *proc) []string {
		return strings.Fields(p.out.String())
	}
	pollUntil(t, "both members consumed 60", 30*time.Second, func() bool { return len(lines(m1))+len(lines(m2)) >= 60 })
	parts := func(p *proc) map[string]bool {
		out := map[string]bool{}
		for _, l := range lines(p) {
			out[strings.SplitN(l, ":", 2)[0]] = true
		}
		return out
	}
	p1, p2 := parts(m1), parts(m2)
	if len(p1) == 0 || len(p2) == 0 {
		t.Fatalf("one member got nothing: %v / %v", p1, p2)
	}
	for p := range p1 {
		if p2[p] {
			t.Fatalf("partition %s consumed by both members", p)
		}
	}
	stop(m1)
	stop(m2)
	pollUntil(t, "group empty", 15*time.Second, func() bool { return describeGroup(t, adm, group).State == "Empty" })

	// Committed offsets resume: only the new messages. (No -o here: kcat
	// applies -o to every assigned partition, overriding commits.)
	runKcat(t, "x:new1\ny:new2\n", "-b", s.Addr(), "-P", "-t", topic, "-K:")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, kp, "-b", s.Addr(), "-G", group, "-X", "auto.offset.reset=earliest", "-e", "-q", topic)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat -G resume: %v\n%s", err, errb.String())
	}
	got := strings.Fields(out.String())
	sort.Strings(got)
	if strings.Join(got, ",") != "new1,new2" {
		t.Fatalf("resumed member read %v", got)
	}
}
