package sshx

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeys verifies server keys against known_hosts files and records new ones when allowed.
// Callbacks are cached per file set and rebuilt after a key is recorded.
type hostKeys struct {
	warnf func(string, ...any)

	mu    sync.Mutex
	cache map[string]ssh.HostKeyCallback
	// fileMu serialises appends to one file within this process; flock covers other processes.
	fileMu map[string]*sync.Mutex
}

var probeKey ssh.PublicKey

func init() {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	probeKey, _ = ssh.NewPublicKey(pub)
}

func newHostKeys(warnf func(string, ...any)) *hostKeys {
	return &hostKeys{warnf: warnf, cache: map[string]ssh.HostKeyCallback{}, fileMu: map[string]*sync.Mutex{}}
}

func existing(files []string) []string {
	var out []string
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && !st.IsDir() {
			out = append(out, f)
		}
	}
	return out
}

func (hk *hostKeys) callback(files []string, reload bool) (ssh.HostKeyCallback, error) {
	files = existing(files)
	k := strings.Join(files, "\x00")
	hk.mu.Lock()
	defer hk.mu.Unlock()
	if cb, ok := hk.cache[k]; ok && !reload {
		return cb, nil
	}
	cb, err := knownhosts.New(files...)
	if err != nil {
		return nil, fmt.Errorf("%w: known_hosts: %v", ErrConfig, err)
	}
	hk.cache[k] = cb
	return cb, nil
}

// algorithms returns the host key algorithms known_hosts has for the endpoint, so that the
// server is asked for a key type we can verify (otherwise a host known by its ECDSA key that
// offers ED25519 first would look like a changed key). nil when the host is unknown.
func (hk *hostKeys) algorithms(ep *Endpoint) []string {
	cb, err := hk.callback(ep.KnownHostsFiles, false)
	if err != nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if err := cb(ep.knownHostsName(), &net.TCPAddr{IP: net.IPv4zero}, probeKey); !errors.As(err, &ke) {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for _, k := range ke.Want {
		var algos []string
		switch k.Key.Type() {
		case ssh.KeyAlgoRSA:
			algos = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		default:
			algos = []string{k.Key.Type()}
		}
		for _, a := range algos {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// verifier returns the HostKeyCallback for one endpoint.
func (hk *hostKeys) verifier(ep *Endpoint) ssh.HostKeyCallback {
	name := ep.knownHostsName()
	return func(_ string, remote net.Addr, key ssh.PublicKey) error {
		err := hk.check(ep, name, remote, key, false)
		var ke *knownhosts.KeyError
		if err == nil || !errors.As(err, &ke) || len(ke.Want) > 0 {
			return hk.wrap(ep, name, key, err)
		}
		// Unknown host.
		switch ep.StrictHostKeyChecking {
		case "accept-new":
		case "no":
			hk.warnf("%s: StrictHostKeyChecking=no: accepting unverified host key %s %s", name, key.Type(), ssh.FingerprintSHA256(key))
		default:
			return hk.wrap(ep, name, key, err)
		}
		return hk.wrap(ep, name, key, hk.record(ep, name, remote, key))
	}
}

func (hk *hostKeys) check(ep *Endpoint, name string, remote net.Addr, key ssh.PublicKey, reload bool) error {
	cb, err := hk.callback(ep.KnownHostsFiles, reload)
	if err != nil {
		return err
	}
	return cb(name, remote, key)
}

func (hk *hostKeys) wrap(ep *Endpoint, name string, key ssh.PublicKey, err error) error {
	if err == nil {
		return nil
	}
	var ke *knownhosts.KeyError
	if errors.As(err, &ke) {
		return &HostKeyError{Host: knownhosts.Normalize(name), Key: key, Known: ke.Want, Files: ep.KnownHostsFiles[:max(ep.userKnownHosts, min(1, len(ep.KnownHostsFiles)))]}
	}
	var re *knownhosts.RevokedError
	if errors.As(err, &re) {
		return &HostKeyError{Host: knownhosts.Normalize(name), Key: key, Revoked: true}
	}
	return err
}

// record appends the key to the first user known_hosts file. Under the file lock it re-reads
// the files first: another connection or process may have recorded this host meanwhile, and
// a key recorded by someone else that differs from ours is a changed key, not a new one.
func (hk *hostKeys) record(ep *Endpoint, name string, remote net.Addr, key ssh.PublicKey) error {
	if ep.userKnownHosts == 0 {
		return nil // UserKnownHostsFile none: accept for this run only
	}
	file := ep.KnownHostsFiles[0]
	if file == os.DevNull {
		return nil
	}
	hk.mu.Lock()
	fm := hk.fileMu[file]
	if fm == nil {
		fm = &sync.Mutex{}
		hk.fileMu[file] = fm
	}
	hk.mu.Unlock()
	fm.Lock()
	defer fm.Unlock()

	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("%w: record host key: %v", ErrConfig, err)
	}
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("%w: record host key: %v", ErrConfig, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("%w: lock %s: %v", ErrConfig, file, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)

	err = hk.check(ep, name, remote, key, true)
	var ke *knownhosts.KeyError
	if err == nil || !errors.As(err, &ke) || len(ke.Want) > 0 {
		return err // now known (same key) or now changed
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(name)}, key) + "\n"
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			line = "\n" + line
		}
	}
	if _, err := f.WriteString(line); err != nil {
		return fmt.Errorf("%w: record host key in %s: %v", ErrConfig, file, err)
	}
	hk.warnf("%s: recorded new host key %s %s in %s", knownhosts.Normalize(name), key.Type(), ssh.FingerprintSHA256(key), file)
	_, err = hk.callback(ep.KnownHostsFiles, true)
	return err
}
