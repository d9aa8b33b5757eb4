package sshx

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// keyFile is a parsed identity file: a signer, or only the public key of an encrypted key
// (usable when the agent holds it).
type keyFile struct {
	signer ssh.Signer
	pub    ssh.PublicKey
	err    error
}

type keyring struct {
	home  string
	sock  string
	warnf func(string, ...any)

	mu    sync.Mutex
	files map[string]*keyFile
	agent agent.ExtendedAgent
	aerr  error
	adone bool
}

func (k *keyring) load(path string) *keyFile {
	k.mu.Lock()
	defer k.mu.Unlock()
	if kf, ok := k.files[path]; ok {
		return kf
	}
	kf := &keyFile{}
	k.files[path] = kf
	data, err := os.ReadFile(path)
	if err != nil {
		kf.err = err
		return kf
	}
	signer, err := ssh.ParsePrivateKey(data)
	var pm *ssh.PassphraseMissingError
	switch {
	case err == nil:
		kf.signer, kf.pub = signer, signer.PublicKey()
	case errors.As(err, &pm):
		kf.pub = pm.PublicKey
		if kf.pub == nil {
			if pubData, perr := os.ReadFile(path + ".pub"); perr == nil {
				kf.pub, _, _, _, _ = ssh.ParseAuthorizedKey(pubData)
			}
		}
		kf.err = fmt.Errorf("%s is passphrase-protected; add it to ssh-agent", path)
	default:
		kf.err = fmt.Errorf("%s: %v", path, err)
	}
	return kf
}

func (k *keyring) agentClient() (agent.ExtendedAgent, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.adone {
		return k.agent, k.aerr
	}
	k.adone = true
	if k.sock == "" {
		return nil, nil
	}
	conn, err := net.Dial("unix", k.sock)
	if err != nil {
		k.aerr = fmt.Errorf("ssh-agent at %s: %v", k.sock, err)
		k.warnf("%v; using key files only", k.aerr)
		return nil, nil
	}
	// One connection serves all hosts: the agent client serialises requests itself.
	k.agent = agent.NewClient(conn)
	return k.agent, nil
}

var defaultIdentities = []string{"id_ed25519", "id_ecdsa", "id_rsa"}

// authMethod returns the public key auth for an endpoint: keys named by IdentityFile (from
// the agent when it holds them, else from the file) first, then the agent's other keys unless
// IdentitiesOnly. Without any IdentityFile the defaults ~/.ssh/id_ed25519, id_ecdsa, id_rsa
// are tried, as ssh does.
func (k *keyring) authMethod(ep *Endpoint) (ssh.AuthMethod, error) {
	files := ep.IdentityFiles
	explicit := len(files) > 0
	if !explicit {
		for _, n := range defaultIdentities {
			files = append(files, filepath.Join(k.home, ".ssh", n))
		}
	}
	var wanted []*keyFile
	for _, f := range files {
		kf := k.load(f)
		if kf.pub == nil {
			if explicit && kf.err != nil && !os.IsNotExist(kf.err) {
				k.warnf("identity %v", kf.err)
			}
			continue
		}
		wanted = append(wanted, kf)
	}
	ag, _ := k.agentClient()
	if ag == nil && len(wanted) == 0 {
		return nil, fmt.Errorf("%w: no usable key: none of %v exists and SSH_AUTH_SOCK is not set", ErrConfig, files)
	}
	return ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		var out []ssh.Signer
		seen := map[string]bool{}
		add := func(s ssh.Signer) {
			m := string(s.PublicKey().Marshal())
			if !seen[m] {
				seen[m] = true
				out = append(out, s)
			}
		}
		var agentSigners []ssh.Signer
		if ag != nil {
			agentSigners, _ = ag.Signers()
		}
		for _, kf := range wanted {
			found := false
			for _, s := range agentSigners {
				if bytes.Equal(s.PublicKey().Marshal(), kf.pub.Marshal()) {
					add(s)
					found = true
				}
			}
			if !found && kf.signer != nil {
				add(kf.signer)
			}
		}
		if !ep.IdentitiesOnly {
			for _, s := range agentSigners {
				add(s)
			}
		}
		return out, nil
	}), nil
}
