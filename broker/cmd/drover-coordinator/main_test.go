package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drover/drover/broker/coordinator"
)

func TestValidateFlag(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "zoo.cfg")
	os.WriteFile(cfg, []byte("dataDir="+dir+"\nclientPort=2181\n"), 0o644)
	if rc := run([]string{"-t", "--config", cfg}); rc != 0 {
		t.Fatalf("-t on a valid config = %d", rc)
	}
	os.WriteFile(cfg, []byte("dataDir="+dir+"\nclientPort=x\n"), 0o644)
	if rc := run([]string{"-t", "--config", cfg}); rc != 1 {
		t.Fatalf("-t on an invalid config = %d", rc)
	}
	if rc := run([]string{"--version"}); rc != 0 {
		t.Fatalf("--version = %d", rc)
	}
	if rc := run([]string{"--help"}); rc != 0 {
		t.Fatalf("--help = %d", rc)
	}
}

// TestNotifyAndSigterm runs the whole binary path: READY=1 arrives on NOTIFY_SOCKET once the
// member leads its (single-member) cluster, SIGTERM stops it cleanly.
func TestNotifyAndSigterm(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)

	peer := func() int {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}()
	cfg := filepath.Join(dir, "zoo.cfg")
	os.WriteFile(cfg, fmt.Appendf(nil, "dataDir=%s/data\nclientPortAddress=127.0.0.1\nclientPort=0\nadmin.serverAddress=127.0.0.1\nadmin.serverPort=0\nserver.1=127.0.0.1:%d:3888\n", dir, peer), 0o644)
	os.MkdirAll(filepath.Join(dir, "data"), 0o700)
	os.WriteFile(filepath.Join(dir, "data", "myid"), []byte("1\n"), 0o644)

	done := make(chan int, 1)
	go func() { done <- run([]string{"--config", cfg}) }()

	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, 256)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no READY=1 on NOTIFY_SOCKET: %v", err)
		}
		if strings.Contains(string(buf[:n]), "READY=1") {
			break
		}
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case rc := <-done:
		if rc != 0 {
			t.Fatalf("exit code after SIGTERM = %d", rc)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("did not stop on SIGTERM")
	}
}

func TestExampleConfig(t *testing.T) {
	c, warns, err := coordinator.ParseFile("zoo.cfg.example")
	if err != nil || len(warns) > 0 || len(c.Servers) != 3 {
		t.Fatalf("zoo.cfg.example: %v %v", warns, err)
	}
}
