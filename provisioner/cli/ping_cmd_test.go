package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drover/drover/provisioner/sshx/sshxtest"
)

// The seed INI inventory, unchanged, reached through an ssh config that maps its names to
// (in-process) servers: the fleet e2e setup in miniature.
func TestPingSeedInventoryThroughSSHConfig(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	key, pemBytes := sshxtest.NewKey(t)
	keyPath := filepath.Join(home, "fleet_key")
	os.WriteFile(keyPath, pemBytes, 0o600)
	kh := filepath.Join(home, "fleet_known_hosts")
	var cfg strings.Builder
	names := []string{"peter-zk01.foo.bar", "peter-zk02.foo.bar", "peter-zk03.foo.bar", "peter-kafka01.foo.bar", "peter-kafka02.foo.bar"}
	for _, n := range names {
		s := sshxtest.Start(t, "", nil, key.PublicKey())
		fmt.Fprintf(&cfg, "Host %s\n  HostName 127.0.0.1\n  Port %d\n", n, s.Port())
	}
	// peter-kafka03 is down.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	_, downPort, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	fmt.Fprintf(&cfg, "Host peter-kafka03.foo.bar\n  HostName 127.0.0.1\n  Port %s\n", downPort)
	fmt.Fprintf(&cfg, "Host *\n  User tester\n  IdentityFile %s\n  UserKnownHostsFile %s\n  StrictHostKeyChecking accept-new\n", keyPath, kh)
	cfgPath := filepath.Join(home, "ssh_config")
	os.WriteFile(cfgPath, []byte(cfg.String()), 0o600)
	seed := "../../inventories/seed/hosts"

	var out, errb bytes.Buffer
	code := MainIO([]string{"ping", "-i", seed, "--ssh-config", cfgPath, "--limit", "all:!peter-kafka03.foo.bar"}, &out, &errb)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), "5 hosts: ok=5 unreachable=0 failed=0") {
		t.Errorf("output:\n%s", out.String())
	}
	t.Logf("\n%s", out.String())

	out.Reset()
	errb.Reset()
	code = MainIO([]string{"ping", "-i", seed, "--ssh-config", cfgPath, "--connect-timeout", "500ms"}, &out, &errb)
	if code != ExitUnreachable || !strings.Contains(out.String(), "UNREACHABLE") {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}

	out.Reset()
	code = MainIO([]string{"inventory", "-i", seed, "--ssh-config", cfgPath, "--list", "--output", "json", "--limit", "kafkahosts"}, &out, &errb)
	if code != ExitOK {
		t.Fatalf("inventory exit %d: %s", code, errb.String())
	}
	var doc struct {
		Hosts []struct {
			Name string
			Role string
			ID   int
			SSH  struct {
				Hostname string
				Port     int
				User     string
			}
		}
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Hosts) != 3 || doc.Hosts[2].Role != "broker" || doc.Hosts[2].ID != 3 || doc.Hosts[2].SSH.User != "tester" || doc.Hosts[2].SSH.Hostname != "127.0.0.1" {
		t.Errorf("json = %s", out.String())
	}
}

func TestUsageAndErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if code := MainIO(nil, &out, &errb); code != ExitFailed || !strings.Contains(errb.String(), "ping") {
		t.Errorf("no args: %d %s", code, errb.String())
	}
	if code := MainIO([]string{"--version"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "drover dev") {
		t.Errorf("version: %q", out.String())
	}
	errb.Reset()
	if code := MainIO([]string{"ping", "-i", "nope.yml"}, &out, &errb); code != ExitFailed || !strings.Contains(errb.String(), "nope.yml") {
		t.Errorf("missing inventory: %d %s", code, errb.String())
	}
	errb.Reset()
	if code := MainIO([]string{"inventory", "-i", "../../inventories/seed/hosts", "--limit", "typo"}, &out, &errb); code != ExitFailed || !strings.Contains(errb.String(), `"typo" matches no host`) {
		t.Errorf("bad limit: %d %s", code, errb.String())
	}
}
