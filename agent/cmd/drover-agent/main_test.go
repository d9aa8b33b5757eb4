package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/drover/drover/agent/protocol"
)

// The test binary doubles as the agent when DROVER_AGENT_AS_MAIN is set, so the kill test runs a
// real agent process without a separate build.
func TestMain(m *testing.M) {
	if os.Getenv("DROVER_AGENT_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func agentCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "DROVER_AGENT_AS_MAIN=1")
	return cmd
}

func TestProtocolAndVersion(t *testing.T) {
	var out bytes.Buffer
	if rc := run([]string{"--protocol"}, nil, &out, &out); rc != 0 || strings.TrimSpace(out.String()) != strconv.Itoa(protocol.ProtocolVersion) {
		t.Fatalf("--protocol: %d %q", rc, out.String())
	}
	out.Reset()
	if rc := run([]string{"--version"}, nil, &out, &out); rc != 0 || !strings.HasPrefix(out.String(), "drover-agent ") {
		t.Fatalf("--version: %q", out.String())
	}
	if rc := run([]string{"--help"}, nil, &out, &out); rc != 0 {
		t.Fatal("--help")
	}
	if rc := run([]string{"bogus"}, nil, &out, &out); rc != 2 {
		t.Fatal("unknown command accepted")
	}
}

func TestPutHasApply(t *testing.T) {
	root := t.TempDir()
	payload := bytes.Repeat([]byte("artifact"), 50000)
	s := sha256.Sum256(payload)
	h := hex.EncodeToString(s[:])
	var z bytes.Buffer
	zw, _ := zstd.NewWriter(&z)
	zw.Write(payload)
	zw.Close()
	var out, errb bytes.Buffer
	if rc := run([]string{"--root", root, "put", "--sha256", h, "--compress", "zstd"}, &z, &out, &errb); rc != 0 {
		t.Fatalf("put: %s", errb.String())
	}
	out.Reset()
	other := strings.Repeat("0", 64)
	if rc := run([]string{"--root", root, "has", h, other}, nil, &out, &errb); rc != 0 || out.String() != h+"\n" {
		t.Fatalf("has: %q %s", out.String(), errb.String())
	}

	req := protocol.Request{Version: protocol.ProtocolVersion, Owned: []string{"/opt/drover/bin", "/etc/x"}, Tasks: []protocol.Task{
		protocol.NewTask("bin", protocol.ArtifactParams{SHA256: h, Link: "/opt/drover/bin/x"}),
		protocol.NewTask("conf", protocol.FileParams{Path: "/etc/x/x.conf", Content: "a=1\n"}),
	}}
	body, _ := json.Marshal(req)
	out.Reset()
	if rc := run([]string{"--root", root}, bytes.NewReader(body), &out, &errb); rc != 0 {
		t.Fatalf("apply rc %d: %s %s", rc, out.String(), errb.String())
	}
	var last protocol.Event
	n := 0
	for sc := bufio.NewScanner(&out); sc.Scan(); n++ {
		if err := json.Unmarshal(sc.Bytes(), &last); err != nil {
			t.Fatalf("bad event line %q", sc.Text())
		}
	}
	if n != 5 || last.Status != protocol.StatusDone || last.Summary.Changed != 2 {
		t.Fatalf("%d events, last %+v", n, last)
	}
	req.Version = 99
	body, _ = json.Marshal(req)
	if rc := run([]string{"--root", root}, bytes.NewReader(body), &out, &errb); rc != 1 {
		t.Fatal("other protocol version accepted")
	}
}

// TestKilledMidWrite kills the agent with SIGKILL while it writes a large file and checks that the
// final path holds the old or the new content, never a mix or a prefix.
func TestKilledMidWrite(t *testing.T) {
	root := t.TempDir()
	final := filepath.Join(root, "data/big")
	os.MkdirAll(filepath.Dir(final), 0755)
	old := strings.Repeat("o", 1<<20)
	os.WriteFile(final, []byte(old), 0644)
	newContent := strings.Repeat("n", 32<<20)
	req := protocol.Request{Version: protocol.ProtocolVersion, Owned: []string{"/data"}, Root: root, Tasks: []protocol.Task{
		protocol.NewTask("big", protocol.FileParams{Path: "/data/big", Content: newContent}),
	}}
	body, _ := json.Marshal(req)
	sawOld, sawNew, sawTemp := 0, 0, 0
	for i := 0; i < 8; i++ {
		os.WriteFile(final, []byte(old), 0644)
		cmd := agentCmd()
		cmd.Stdin = bytes.NewReader(body)
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Wait for the task to start, then kill as soon as the temp file has some bytes (even
		// iterations) or after a growing delay (odd ones).
		br := bufio.NewReader(stdout)
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) && !tempHasBytes(filepath.Dir(final)) {
				time.Sleep(100 * time.Microsecond)
			}
		} else {
			time.Sleep(time.Duration(i*i) * 2 * time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		got, err := os.ReadFile(final)
		if err != nil {
			t.Fatal(err)
		}
		switch string(got) {
		case old:
			sawOld++
		case newContent:
			sawNew++
		default:
			t.Fatalf("iteration %d: final path holds %d bytes of mixed content", i, len(got))
		}
		ents, _ := os.ReadDir(filepath.Dir(final))
		if len(ents) > 1 {
			sawTemp++
			for _, e := range ents {
				if e.Name() != "big" {
					os.Remove(filepath.Join(filepath.Dir(final), e.Name()))
				}
			}
		}
	}
	t.Logf("old=%d new=%d killed-with-temp-file=%d", sawOld, sawNew, sawTemp)
	if sawTemp == 0 {
		t.Fatal("never killed the agent mid-write: atomicity not exercised")
	}
}

func tempHasBytes(dir string) bool {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".big.drover-") {
			if fi, err := e.Info(); err == nil && fi.Size() > 0 {
				return true
			}
		}
	}
	return false
}
