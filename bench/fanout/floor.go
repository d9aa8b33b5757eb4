package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/drover/drover/bench/fanout/farm"
)

// floorHost is one line of the floor's host list.
type floorHost struct {
	Addr    string `json:"addr"`
	HostKey string `json:"host_key"` // authorized_keys format
}

type floorList struct {
	KeyFile string      `json:"key_file"`
	Hosts   []floorHost `json:"hosts"`
}

func writeFloorList(path string, f *farm.Farm, hosts []*farm.Host) error {
	l := floorList{KeyFile: f.KeyFile}
	for _, h := range hosts {
		l.Hosts = append(l.Hosts, floorHost{Addr: h.Addr, HostKey: string(ssh.MarshalAuthorizedKey(h.HostKey))})
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// floorMain is the floor itself, run as a child process so its peak RSS is its own: one SSH
// connection and one session running `true` per host, at most `concurrency` at a time.
func floorMain(listPath string, concurrency int) int {
	b, err := os.ReadFile(listPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var l floorList
	if err := json.Unmarshal(b, &l); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	keyPEM, err := os.ReadFile(l.KeyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	signer, err := ssh.ParsePrivateKey(keyPEM)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var (
		wg     sync.WaitGroup
		failed atomic.Int32
		sem    = make(chan struct{}, concurrency)
	)
	for _, h := range l.Hosts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := runTrue(h, signer); err != nil {
				failed.Add(1)
				fmt.Fprintf(os.Stderr, "%s: %v\n", h.Addr, err)
			}
		}()
	}
	wg.Wait()
	// Cross-check for the parent's sampling: the exact high-water mark, into the floor's log.
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmHWM:") {
				fmt.Fprintln(os.Stderr, "floor", strings.Join(strings.Fields(l), " "))
			}
		}
	}
	if n := failed.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "%d of %d hosts failed\n", n, len(l.Hosts))
		return 1
	}
	return 0
}

func runTrue(h floorHost, signer ssh.Signer) error {
	hk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(h.HostKey))
	if err != nil {
		return err
	}
	cfg := &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(hk),
		Timeout:         60 * time.Second,
	}
	conn, err := net.DialTimeout("tcp", h.Addr, cfg.Timeout)
	if err != nil {
		return err
	}
	c, chans, reqs, err := ssh.NewClientConn(conn, h.Addr, cfg)
	if err != nil {
		conn.Close()
		return err
	}
	client := ssh.NewClient(c, chans, reqs)
	defer client.Close()
	s, err := client.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Run("true")
}
