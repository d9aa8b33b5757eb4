// Package sshxtest is an in-process SSH server for tests: public key auth, "exec" requests run
// with /bin/sh -c (exit status, signals, stdin), and direct-tcpip, so it also works as a jump
// host and for port forwarding. Listens on loopback.
package sshxtest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Server is an in-process sshd: public key auth, "exec" run with /bin/sh -c, and
// direct-tcpip (so it also serves as a jump host and for Forward).
type Server struct {
	t          testing.TB
	ln         net.Listener
	Addr       string
	HostKey    ssh.Signer
	cfg        *ssh.ServerConfig
	env        []string
	mu         sync.Mutex
	allowed    map[string]bool // marshalled public keys
	Handshakes atomic.Int32
	Forwards   atomic.Int32
	wg         sync.WaitGroup
}

func NewKey(t testing.TB) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return signer, pem.EncodeToMemory(block)
}

// startServer listens on addr ("" = random loopback port).
func Start(t testing.TB, addr string, hostKey ssh.Signer, clientKeys ...ssh.PublicKey) *Server {
	return StartOpts(t, addr, hostKey, nil, nil, clientKeys...)
}

func StartOpts(t testing.TB, addr string, hostKey ssh.Signer, extraHostKeys []ssh.Signer, env []string, clientKeys ...ssh.PublicKey) *Server {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	if hostKey == nil {
		hostKey, _ = NewKey(t)
	}
	s := &Server{t: t, HostKey: hostKey, allowed: map[string]bool{}}
	for _, k := range clientKeys {
		s.allowed[string(k.Marshal())] = true
	}
	s.cfg = &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.allowed[string(key.Marshal())] {
				return nil, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	s.cfg.AddHostKey(hostKey)
	for _, k := range extraHostKeys {
		s.cfg.AddHostKey(k)
	}
	s.env = env
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s.ln, s.Addr = ln, ln.Addr().String()
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

func (s *Server) Close() {
	s.ln.Close()
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.handle(c)
	}
}

func (s *Server) handle(c net.Conn) {
	sc, chans, reqs, err := ssh.NewServerConn(c, s.cfg)
	if err != nil {
		c.Close()
		return
	}
	s.Handshakes.Add(1)
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		switch nc.ChannelType() {
		case "session":
			go s.session(nc)
		case "direct-tcpip":
			go s.direct(nc)
		default:
			nc.Reject(ssh.UnknownChannelType, "unsupported")
		}
	}
}

func (s *Server) session(nc ssh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	var cmd *exec.Cmd
	var cmdMu sync.Mutex
	for req := range reqs {
		switch req.Type {
		case "exec":
			var p struct{ Command string }
			if err := ssh.Unmarshal(req.Payload, &p); err != nil {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			cmdMu.Lock()
			cmd = exec.Command("/bin/sh", "-c", p.Command)
			cmd.Env = append(os.Environ(), s.env...)
			cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
			stdin, _ := cmd.StdinPipe()
			err := cmd.Start()
			cmdMu.Unlock()
			if err != nil {
				ch.Stderr().Write([]byte(err.Error()))
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{127}))
				return
			}
			go func() { io.Copy(stdin, ch); stdin.Close() }()
			go func() {
				status := 0
				if err := cmd.Wait(); err != nil {
					var ee *exec.ExitError
					if errors.As(err, &ee) {
						status = ee.ExitCode()
						if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
							status = 128 + int(ws.Signal())
						}
					} else {
						status = 255
					}
				}
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{uint32(status)}))
				ch.Close()
			}()
		case "signal":
			cmdMu.Lock()
			if cmd != nil && cmd.Process != nil {
				cmd.Process.Kill()
			}
			cmdMu.Unlock()
		default:
			req.Reply(req.Type == "env", nil)
		}
	}
}

func (s *Server) direct(nc ssh.NewChannel) {
	var p struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}
	if err := ssh.Unmarshal(nc.ExtraData(), &p); err != nil {
		nc.Reject(ssh.ConnectionFailed, "bad payload")
		return
	}
	target, err := net.Dial("tcp", net.JoinHostPort(p.Host, strconv.Itoa(int(p.Port))))
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	s.Forwards.Add(1)
	ch, reqs, err := nc.Accept()
	if err != nil {
		target.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	go func() { io.Copy(ch, target); ch.CloseWrite() }()
	io.Copy(target, ch)
	target.Close()
	ch.Close()
}

// knownHostsLine is the known_hosts entry for this server.
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.HostKey.PublicKey()) + "\n"
}

func KnownHostsLine(addr string, key ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
}

func NewECDSAKey(t testing.TB) ssh.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
