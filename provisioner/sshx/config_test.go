package sshx

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestConfigResolution(t *testing.T) {
	e := newEnv(t)
	// Fedora's 50-redhat.conf shape: an unsupported Match block in an Included file, and a Match
	// exec at the top level; neither may break the hosts around them.
	e.write(filepath.Join(e.home, ".ssh", "conf.d", "50-redhat.conf"), `
Match final all
	Include /etc/crypto-policies/back-ends/openssh.config
	GSSAPIAuthentication yes
	User wrong-from-final
Host *.corp
	User corpuser
`)
	e.write(filepath.Join(e.home, ".ssh", "conf.d", "10-first.conf"), "Host db1.corp\n  Port 2200\n")
	e.write(e.config, `
Include conf.d/*.conf
Match exec "false"
  User wrong-from-exec
Host peter-zk0? peter-kafka0?.foo.bar !peter-kafka09.foo.bar
  HostName 10.0.0.%h
  User ec2-user
  IdentityFile ~/.ssh/%r-%h-%p.pem
  IdentityFile "/keys/with space/%u %%"
  IdentitiesOnly yes
Host *.foo.bar
  User fallback
  Port 2222
  ProxyJump ssh://jumper@bastion:2022
Match host 10.*
  HostKeyAlias matched-by-match-host
Match originalhost db1.corp user corpuser
  ConnectTimeout 7
Host *
  UserKnownHostsFile ~/.ssh/kh1 "/tmp/kh 2"
  StrictHostKeyChecking accept-new
  ProxyJump none
`)
	var warnings []string
	p := e.pool(Options{Warnf: func(f string, a ...any) { warnings = append(warnings, fmt.Sprintf(f, a...)) }})

	ep, err := p.Resolve(Target{Name: "peter-kafka01.foo.bar"})
	if err != nil {
		t.Fatal(err)
	}
	if ep.HostName != "10.0.0.peter-kafka01.foo.bar" || ep.User != "ec2-user" || ep.Port != 2222 {
		t.Errorf("endpoint = %s (hostname %s)", ep, ep.HostName)
	}
	wantIDs := []string{
		filepath.Join(e.home, ".ssh", "ec2-user-10.0.0.peter-kafka01.foo.bar-2222.pem"),
		"/keys/with space/tester %",
	}
	if !reflect.DeepEqual(ep.IdentityFiles, wantIDs) || !ep.IdentitiesOnly {
		t.Errorf("identities = %q only=%v", ep.IdentityFiles, ep.IdentitiesOnly)
	}
	if ep.HostKeyAlias != "matched-by-match-host" {
		t.Errorf("Match host: alias %q", ep.HostKeyAlias)
	}
	if ep.StrictHostKeyChecking != "accept-new" || ep.KnownHostsFiles[0] != filepath.Join(e.home, ".ssh", "kh1") || ep.KnownHostsFiles[1] != "/tmp/kh 2" {
		t.Errorf("known hosts = %q %s", ep.KnownHostsFiles, ep.StrictHostKeyChecking)
	}
	if ep.Jump == nil || ep.Jump.String() != "jumper@bastion:2022" || ep.Jump.Jump != nil {
		t.Errorf("jump = %+v", ep.Jump)
	}
	if ep.Jump.StrictHostKeyChecking != "accept-new" {
		t.Errorf("jump hosts get their own config too")
	}

	// Negated pattern: the first block does not apply.
	ep, _ = p.Resolve(Target{Name: "peter-kafka09.foo.bar"})
	if ep.User != "fallback" || ep.HostName != "peter-kafka09.foo.bar" {
		t.Errorf("negation: %s", ep)
	}
	// Included files apply in lexical order, first value wins; Match final/exec are ignored.
	ep, _ = p.Resolve(Target{Name: "db1.corp"})
	if ep.User != "corpuser" || ep.Port != 2200 || ep.ConnectTimeout.Seconds() != 7 {
		t.Errorf("include: %s timeout %s", ep, ep.ConnectTimeout)
	}
	// Inventory settings beat ssh_config; Host patterns match the ansible_host too (Ansible
	// passes it to ssh), and ansible_host beats HostName.
	ep, _ = p.Resolve(Target{Name: "inv-name", Address: "peter-zk01", User: "admin", Port: 22, KeyFile: "~/inv.pem"})
	if ep.User != "admin" || ep.Port != 22 || ep.HostName != "peter-zk01" || ep.IdentityFiles[0] != filepath.Join(e.home, "inv.pem") || !ep.IdentitiesOnly {
		t.Errorf("precedence: %s %q", ep, ep.IdentityFiles)
	}
	// ...and Host patterns match the inventory name when ansible_host is an IP.
	ep, _ = p.Resolve(Target{Name: "peter-zk02", Address: "10.9.9.9"})
	if ep.String() != "ec2-user@10.9.9.9:22" || ep.HostKeyAlias != "matched-by-match-host" {
		t.Errorf("name match with ansible_host: %s alias %q", ep, ep.HostKeyAlias)
	}
	// Defaults.
	ep, _ = p.Resolve(Target{Name: "plain"})
	if ep.String() != "tester@plain:22" || ep.Jump != nil || len(ep.IdentityFiles) != 0 {
		t.Errorf("defaults: %s %+v", ep, ep)
	}
	joined := strings.Join(warnings, "\n")
	if !strings.Contains(joined, "Match criterion") || strings.Count(joined, "ignoring this Match block") != 2 {
		t.Errorf("warnings = %q", warnings)
	}
}

func TestJumpSpecs(t *testing.T) {
	cases := map[string][3]string{
		"bastion":                {"", "bastion", "0"},
		"ec2-user@bastion:2222":  {"ec2-user", "bastion", "2222"},
		"ssh://u@h.example:2022": {"u", "h.example", "2022"},
		"a@b@host":               {"a@b", "host", "0"},
		"[::1]:22":               {"", "::1", "22"},
	}
	for in, want := range cases {
		u, h, p, err := parseJumpSpec(in)
		if err != nil || u != want[0] || h != want[1] || strconv.Itoa(p) != want[2] {
			t.Errorf("%q -> %q %q %d %v", in, u, h, p, err)
		}
	}
	if _, _, _, err := parseJumpSpec("host:99999"); err == nil {
		t.Error("bad port accepted")
	}
}

func TestProxyJumpLoop(t *testing.T) {
	e := newEnv(t)
	e.write(e.config, "Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n")
	if _, err := e.pool(Options{}).Resolve(Target{Name: "a"}); err == nil || !strings.Contains(err.Error(), "loop") {
		t.Fatalf("err = %v", err)
	}
}

func TestProxyCommandTranslation(t *testing.T) {
	e := newEnv(t)
	e.write(e.config, "Host x\n  ProxyCommand ssh -q -W %h:%p gw\nHost y\n  ProxyCommand nc %h %p\n")
	ep, err := e.pool(Options{}).Resolve(Target{Name: "x"})
	if err != nil || ep.Jump == nil || ep.Jump.Alias != "gw" {
		t.Fatalf("%+v %v", ep, err)
	}
	if _, err := e.pool(Options{}).Resolve(Target{Name: "y"}); err == nil || !strings.Contains(err.Error(), "use ProxyJump") {
		t.Fatalf("err = %v", err)
	}
}

func TestMissingConfigFile(t *testing.T) {
	if _, err := NewPool(Options{ConfigFile: filepath.Join(t.TempDir(), "nope")}); err == nil || !os.IsNotExist(unwrapAll(err)) {
		t.Fatalf("err = %v", err)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}
