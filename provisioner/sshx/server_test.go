package sshx

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/drover/drover/provisioner/sshx/sshxtest"
	"golang.org/x/crypto/ssh"
)

type testServer = sshxtest.Server

var (
	startServer       = sshxtest.Start
	startServerOpts   = sshxtest.StartOpts
	newKey            = sshxtest.NewKey
	knownhostsLineFor = sshxtest.KnownHostsLine
	newECDSASigner    = sshxtest.NewECDSAKey
)

// env is a fake home with an ssh config, a client key and known_hosts.
type testEnv struct {
	t       *testing.T
	home    string
	key     ssh.Signer
	keyPath string
	config  string
	kh      string
}

func newEnv(t *testing.T) *testEnv {
	t.Helper()
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
		t.Fatal(err)
	}
	key, pemBytes := newKey(t)
	e := &testEnv{t: t, home: home, key: key, keyPath: filepath.Join(home, ".ssh", "id_test"),
		config: filepath.Join(home, ".ssh", "config"), kh: filepath.Join(home, ".ssh", "known_hosts")}
	if err := os.WriteFile(e.keyPath, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *testEnv) write(path, content string) {
	e.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) trust(servers ...*testServer) {
	f, err := os.OpenFile(e.kh, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	for _, s := range servers {
		f.WriteString(s.KnownHostsLine())
	}
}

func (e *testEnv) pool(opts Options) *Pool {
	e.t.Helper()
	opts.Home = e.home
	if opts.AgentSocket == "" {
		opts.AgentSocket = "none"
	}
	opts.LocalUser = "tester"
	if opts.ConfigFile == "" {
		opts.ConfigFile = e.config
	}
	if opts.Warnf == nil {
		opts.Warnf = e.t.Logf
	}
	p, err := NewPool(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { p.Close() })
	return p
}

func (e *testEnv) rawKey(t *testing.T) any {
	data, err := os.ReadFile(e.keyPath)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ssh.ParseRawPrivateKey(data)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
