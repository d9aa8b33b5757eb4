package sshx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

func hostBlock(alias string, s *testServer, extra string) string {
	return fmt.Sprintf("Host %s\n  HostName 127.0.0.1\n  Port %d\n  User tester\n%s\n", alias, s.Port(), extra)
}

func TestKeyAuthRunForwardAndReuse(t *testing.T) {
	e := newEnv(t)
	srv := startServer(t, "", nil, e.key.PublicKey())
	e.trust(srv)
	e.write(e.config, hostBlock("target", srv, "  IdentityFile ~/.ssh/id_test\n  IdentitiesOnly yes"))
	p := e.pool(Options{})
	ctx := context.Background()

	c, err := p.Connect(ctx, Target{Name: "target"})
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	err = c.Run(ctx, "echo hello; echo oops >&2; exit 3", nil, &out, &errb)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("err = %v, want exit 3", err)
	}
	if out.String() != "hello\n" || errb.String() != "oops\n" {
		t.Errorf("stdout %q stderr %q", out.String(), errb.String())
	}
	got, err := c.Output(ctx, "tr a-z A-Z")
	if err != nil || string(got) != "" {
		t.Errorf("empty stdin: %q %v", got, err)
	}
	out.Reset()
	if err := c.Run(ctx, "cat", strings.NewReader("piped"), &out, nil); err != nil || out.String() != "piped" {
		t.Errorf("stdin: %q %v", out.String(), err)
	}

	// Sessions are multiplexed over one connection, and Connect reuses it.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c2, err := p.Connect(ctx, Target{Name: "target"})
			if err != nil {
				errs <- err
				return
			}
			o, err := c2.Output(ctx, fmt.Sprintf("echo %d", i))
			if err != nil || strings.TrimSpace(string(o)) != fmt.Sprint(i) {
				errs <- fmt.Errorf("run %d: %q %v", i, o, err)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := srv.Handshakes.Load(); n != 1 {
		t.Errorf("handshakes = %d, want 1 (one connection per host)", n)
	}

	// Forward: direct-tcpip to a service only the host can reach.
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			conn, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(conn, conn); conn.Close() }()
		}
	}()
	fc, err := c.Forward(ctx, echo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	fc.Write([]byte("ping"))
	buf := make([]byte, 4)
	if _, err := io.ReadFull(fc, buf); err != nil || string(buf) != "ping" {
		t.Errorf("forward echo = %q %v", buf, err)
	}
	fc.Close()

	// A cancelled context kills the command promptly.
	cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = c.Run(cctx, "sleep 10", nil, nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Errorf("cancel: %v after %s", err, time.Since(start))
	}
}

func TestAgentAuth(t *testing.T) {
	e := newEnv(t)
	srv := startServer(t, "", nil, e.key.PublicKey())
	e.trust(srv)
	kr := agent.NewKeyring()
	raw := e.rawKey(t)
	// No IdentityFile and no default key files: only the agent can authenticate.
	os.Remove(e.keyPath)
	e.write(e.config, hostBlock("target", srv, ""))
	if err := kr.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go agent.ServeAgent(kr, conn)
		}
	}()
	p := e.pool(Options{AgentSocket: sock})
	c, err := p.Connect(context.Background(), Target{Name: "target"})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.Output(context.Background(), "echo via-agent"); err != nil || string(out) != "via-agent\n" {
		t.Fatalf("%q %v", out, err)
	}

	// IdentitiesOnly with an unrelated IdentityFile hides the agent's key: auth fails, and the
	// error says so.
	other, pemBytes := newKey(t)
	_ = other
	e.write(filepath.Join(e.home, ".ssh", "other"), string(pemBytes))
	e.write(e.config, hostBlock("target", srv, "  IdentityFile ~/.ssh/other\n  IdentitiesOnly yes"))
	p2 := e.pool(Options{AgentSocket: sock, ConnectTimeout: 600 * time.Millisecond})
	_, err = p2.Connect(context.Background(), Target{Name: "target"})
	if !errors.Is(err, ErrAuth) || !IsUnreachable(err) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
}

func TestHostKeyVerification(t *testing.T) {
	e := newEnv(t)
	srv := startServer(t, "", nil, e.key.PublicKey())
	e.write(e.config, hostBlock("target", srv, "  IdentityFile ~/.ssh/id_test")+hostBlock("alias2", srv, "  IdentityFile ~/.ssh/id_test"))
	ctx := context.Background()

	// Unknown key, strict: refused at once, never retried.
	start := time.Now()
	_, err := e.pool(Options{ConnectTimeout: 5 * time.Second}).Connect(ctx, Target{Name: "target"})
	var ce *ConnectError
	if !errors.Is(err, ErrHostKeyUnknown) || !errors.As(err, &ce) || ce.Attempts != 1 || time.Since(start) > 2*time.Second {
		t.Fatalf("unknown key: %v (%+v)", err, ce)
	}
	if !strings.Contains(err.Error(), "--accept-new-host-keys") {
		t.Errorf("message should say how to proceed: %v", err)
	}

	// accept-new records the key, concurrently, exactly once.
	p := e.pool(Options{AcceptNewHostKeys: true})
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func(alias string) {
			defer wg.Done()
			if _, err := p.Connect(ctx, Target{Name: alias}); err != nil {
				t.Error(err)
			}
		}([]string{"target", "alias2"}[i%2])
	}
	wg.Wait()
	data, _ := os.ReadFile(e.kh)
	if n := strings.Count(string(data), "\n"); n != 1 {
		t.Fatalf("known_hosts has %d lines, want 1:\n%s", n, data)
	}
	// Now known: a strict pool connects.
	if _, err := e.pool(Options{}).Connect(ctx, Target{Name: "target"}); err != nil {
		t.Fatal(err)
	}

	// Same address, new host key: a hard error even with accept-new, not retried.
	srv.Close()
	srv2 := startServer(t, srv.Addr, nil, e.key.PublicKey())
	_ = srv2
	start = time.Now()
	_, err = e.pool(Options{AcceptNewHostKeys: true, ConnectTimeout: 5 * time.Second}).Connect(ctx, Target{Name: "target"})
	if !errors.Is(err, ErrHostKeyChanged) || !errors.Is(err, ErrHostKey) || !errors.As(err, &ce) || ce.Attempts != 1 {
		t.Fatalf("changed key: %v", err)
	}
	if !strings.Contains(err.Error(), "HOST KEY CHANGED") || !strings.Contains(err.Error(), "known_hosts:1") {
		t.Errorf("message: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("changed key took %s: it must not be retried", time.Since(start))
	}

	// UserKnownHostsFile + StrictHostKeyChecking accept-new from ssh_config (the fleet's setup).
	fleetKH := filepath.Join(e.home, "fleet", "known_hosts")
	e.write(e.config, hostBlock("target", srv2, "  IdentityFile ~/.ssh/id_test\n  UserKnownHostsFile "+fleetKH+"\n  StrictHostKeyChecking accept-new"))
	if _, err := e.pool(Options{}).Connect(ctx, Target{Name: "target"}); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(fleetKH); !strings.Contains(string(data), string(ssh.MarshalAuthorizedKey(srv2.HostKey.PublicKey())[:40])) {
		t.Errorf("fleet known_hosts = %q", data)
	}
}

func TestHostKeyAlgorithmFromKnownHosts(t *testing.T) {
	// The server has an RSA-less ed25519 key plus an ECDSA key; known_hosts only has ECDSA.
	// Without restricting algorithms the client would get ed25519 and call it a changed key.
	e := newEnv(t)
	ecdsaSigner := newECDSASigner(t)
	srv := startServerOpts(t, "", nil, []ssh.Signer{ecdsaSigner}, nil, e.key.PublicKey())
	e.write(e.kh, knownhostsLineFor(srv.Addr, ecdsaSigner.PublicKey()))
	e.write(e.config, hostBlock("target", srv, "  IdentityFile ~/.ssh/id_test"))
	if _, err := e.pool(Options{}).Connect(context.Background(), Target{Name: "target"}); err != nil {
		t.Fatal(err)
	}
}

func TestProxyJumpTwoHops(t *testing.T) {
	e := newEnv(t)
	b1 := startServer(t, "", nil, e.key.PublicKey())
	b2 := startServer(t, "", nil, e.key.PublicKey())
	var tgts []*testServer
	cfg := hostBlock("bastion1", b1, "") + hostBlock("bastion2", b2, "  ProxyJump bastion1")
	for i := 1; i <= 3; i++ {
		tgt := startServer(t, "", nil, e.key.PublicKey())
		tgts = append(tgts, tgt)
		e.trust(tgt)
		cfg += fmt.Sprintf("Host node%d\n  Port %d\n", i, tgt.Port())
	}
	tgt := tgts[0]
	e.trust(b1, b2)
	cfg += "Host node*\n  HostName 127.0.0.1\n  ProxyJump bastion2\n" +
		"Host *\n  User tester\n  IdentityFile ~/.ssh/id_test\n"
	e.write(e.config, cfg)
	p := e.pool(Options{})
	ctx := context.Background()

	ep, err := p.Resolve(Target{Name: "node1"})
	if err != nil {
		t.Fatal(err)
	}
	if v := ep.Via(); v != "tester@"+b1.Addr+" -> tester@"+b2.Addr {
		t.Fatalf("via = %q", v)
	}
	var wg sync.WaitGroup
	for i := 1; i <= 6; i++ {
		wg.Add(1)
		go func(name string) {
			defer wg.Done()
			c, err := p.Connect(ctx, Target{Name: name})
			if err != nil {
				t.Error(err)
				return
			}
			if out, err := c.Output(ctx, "echo "+name); err != nil || strings.TrimSpace(string(out)) != name {
				t.Errorf("%s: %q %v", name, out, err)
			}
		}(fmt.Sprintf("node%d", (i-1)%3+1))
	}
	wg.Wait()
	// One connection per jump host, shared by all targets.
	if b1.Handshakes.Load() != 1 || b2.Handshakes.Load() != 1 {
		t.Errorf("bastion handshakes = %d, %d; want 1, 1", b1.Handshakes.Load(), b2.Handshakes.Load())
	}
	if b1.Forwards.Load() != 1 || b2.Forwards.Load() != 3 {
		t.Errorf("forwards = %d, %d; want 1, 3", b1.Forwards.Load(), b2.Forwards.Load())
	}
	for i, s := range tgts {
		if s.Handshakes.Load() != 1 {
			t.Errorf("node%d handshakes = %d, want 1", i+1, s.Handshakes.Load())
		}
	}

	// The same chain given inline ("a,b") with user@host:port hops, as from the inventory.
	p2 := e.pool(Options{})
	c, err := p2.Connect(ctx, Target{Name: "direct", Address: "127.0.0.1", Port: tgt.Port(),
		ProxyJump: fmt.Sprintf("tester@127.0.0.1:%d,bastion2", b1.Port())})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Endpoint.Via(); got != "tester@"+b1.Addr+" -> tester@"+b2.Addr {
		t.Errorf("inline via = %q", got)
	}

	// A jump host that is down makes the target unreachable, naming the hop.
	b1.Close()
	p3 := e.pool(Options{ConnectTimeout: 500 * time.Millisecond})
	_, err = p3.Connect(ctx, Target{Name: "node9"})
	var ce *ConnectError
	if !errors.Is(err, ErrUnreachable) || !errors.As(err, &ce) || ce.Hop == "" {
		t.Fatalf("jump down: %v", err)
	}
}

func TestRetryUntilServerStarts(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, portStr, _ := net.SplitHostPort(addr)
	hostKey, _ := newKey(t)
	e.write(e.config, "Host late\n  HostName 127.0.0.1\n  Port "+portStr+"\n  User tester\n  IdentityFile ~/.ssh/id_test\n")
	e.write(e.kh, knownhostsLineFor(addr, hostKey.PublicKey()))
	p := e.pool(Options{ConnectTimeout: 15 * time.Second})
	go func() {
		time.Sleep(800 * time.Millisecond)
		startServer(t, addr, hostKey, e.key.PublicKey())
	}()
	start := time.Now()
	c, err := p.Connect(context.Background(), Target{Name: "late"})
	if err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 700*time.Millisecond {
		t.Errorf("connected before the server started?")
	}
	if _, err := c.Output(context.Background(), "true"); err != nil {
		t.Fatal(err)
	}
}

func TestRefusedGivesUpAfterConnectTimeout(t *testing.T) {
	e := newEnv(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	_, portStr, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	e.write(e.config, "Host gone\n  HostName 127.0.0.1\n  Port "+portStr+"\n  IdentityFile ~/.ssh/id_test\n")
	start := time.Now()
	_, err := e.pool(Options{ConnectTimeout: 800 * time.Millisecond}).Connect(context.Background(), Target{Name: "gone"})
	var ce *ConnectError
	if !errors.Is(err, ErrUnreachable) || !errors.As(err, &ce) || ce.Attempts < 2 {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d < 700*time.Millisecond || d > 3*time.Second {
		t.Errorf("gave up after %s", d)
	}
}

func TestHungServerTimesOut(t *testing.T) {
	e := newEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c) // accept TCP, never send the SSH banner
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	_, portStr, _ := net.SplitHostPort(ln.Addr().String())
	e.write(e.config, "Host hung\n  HostName 127.0.0.1\n  Port "+portStr+"\n  IdentityFile ~/.ssh/id_test\n")
	start := time.Now()
	_, err = e.pool(Options{ConnectTimeout: 1500 * time.Millisecond, AttemptTimeout: 500 * time.Millisecond}).
		Connect(context.Background(), Target{Name: "hung"})
	d := time.Since(start)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v", err)
	}
	if d < 1400*time.Millisecond || d > 4*time.Second {
		t.Errorf("timed out after %s, want ~1.5s", d)
	}
}

func TestBecomeSudo(t *testing.T) {
	e := newEnv(t)
	bin := t.TempDir()
	srv := startServerOpts(t, "", nil, nil, []string{"PATH=" + bin + ":/usr/bin:/bin"}, e.key.PublicKey())
	e.trust(srv)
	e.write(e.config, hostBlock("node3", srv, "  IdentityFile ~/.ssh/id_test"))
	p := e.pool(Options{})
	ctx := context.Background()
	c, err := p.Connect(ctx, Target{Name: "node3", Become: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.BecomeCommand("echo 'a b'"); got != `sudo -n -- sh -c 'echo '"'"'a b'"'"''` {
		t.Errorf("BecomeCommand = %s", got)
	}
	// sudo that wants a password.
	os.WriteFile(filepath.Join(bin, "sudo"), []byte("#!/bin/sh\necho 'sudo: a password is required' >&2\nexit 1\n"), 0o755)
	err = c.CheckSudo(ctx)
	var se *SudoError
	if !errors.As(err, &se) || err.Error() != "tester on node3 cannot sudo without a password (add a NOPASSWD sudoers rule)" {
		t.Fatalf("err = %v", err)
	}
	// Working passwordless sudo: runs the command.
	os.WriteFile(filepath.Join(bin, "sudo"), []byte("#!/bin/sh\n[ \"$1\" = -n ] && [ \"$2\" = -- ] || exit 99\nshift 2\nexec \"$@\"\n"), 0o755)
	var out bytes.Buffer
	if err := c.RunBecome(ctx, "echo root-ish", nil, &out, nil); err != nil || out.String() != "root-ish\n" {
		t.Fatalf("%q %v", out.String(), err)
	}
	// A failing privileged command stays an ExitError.
	var ee *ExitError
	if err := c.RunBecome(ctx, "exit 5", nil, nil, nil); !errors.As(err, &ee) || ee.Code != 5 {
		t.Fatalf("err = %v", err)
	}
	// root needs no sudo.
	c.Endpoint.User = "root"
	if c.BecomeCommand("x") != "x" {
		t.Error("root should not use sudo")
	}
}
