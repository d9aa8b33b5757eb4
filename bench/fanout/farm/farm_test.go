package farm

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestFarmSessionsAndStop(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the farm logs in as root")
	}
	if _, err := os.Stat(SSHD); err != nil {
		t.Skip("no sshd:", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := Start(ctx, 3, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	for _, h := range f.Hosts {
		cfg := &ssh.ClientConfig{User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(f.Signer)},
			HostKeyCallback: ssh.FixedHostKey(h.HostKey), Timeout: 10 * time.Second}
		c, err := ssh.Dial("tcp", h.Addr, cfg)
		if err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		s, err := c.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.Output(`echo "$HOME $DROVER_FARM_ROOT"`)
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.TrimSpace(string(out)), h.Home+" "+h.Root; got != want {
			t.Fatalf("%s: got %q want %q", h.Name, got, want)
		}
	}
	cf, err := WriteClientFiles(t.TempDir(), f.Hosts)
	if err != nil {
		t.Fatal(err)
	}
	kh, _ := os.ReadFile(cf.KnownHosts)
	if strings.Count(string(kh), "\n") != 3 {
		t.Fatalf("known_hosts:\n%s", kh)
	}
	pids := []int{}
	for _, h := range f.Hosts {
		pids = append(pids, h.cmd.Process.Pid)
	}
	f.Stop()
	for _, pid := range pids {
		if syscall.Kill(pid, 0) == nil {
			t.Fatalf("sshd %d still running after Stop", pid)
		}
	}
}
