package tasks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/drover/drover/agent/protocol"
)

var hashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// runArtifact verifies the store file of an uploaded artifact and flips its stable symlink to it.
// The link target is relative, so the link works under a test root too.
func runArtifact(ctx context.Context, env *Env, t protocol.Task) (Result, error) {
	var p protocol.ArtifactParams
	if err := decode(t, &p); err != nil {
		return Result{}, err
	}
	if !hashRE.MatchString(p.SHA256) {
		return Result{}, fmt.Errorf("bad sha256 %q", p.SHA256)
	}
	link, err := env.writable(t, p.Link)
	if err != nil {
		return Result{}, err
	}
	storeNode := filepath.Join(env.StoreDir, p.SHA256)
	store, err := env.Path(storeNode)
	if err != nil {
		return Result{}, err
	}
	target, err := filepath.Rel(filepath.Dir(p.Link), storeNode)
	if err != nil {
		return Result{}, err
	}
	cur, err := os.Readlink(link)
	if err == nil && (cur == target || cur == storeNode) {
		// Already in place. Store files are only ever created by `put`, which verifies the hash
		// before the atomic rename, so the name is proof enough; re-hashing tens of megabytes on
		// every no-op run would be the run's biggest cost.
		if fi, serr := os.Stat(store); serr == nil && fi.Mode().IsRegular() {
			return Result{}, nil
		}
	}
	if err := verifyHash(store, p.SHA256); err != nil {
		if env.Check && os.IsNotExist(err) {
			// push-artifacts does not upload in check mode; the link would still change.
		} else {
			return Result{}, err
		}
	}
	if err != nil && !os.IsNotExist(err) {
		if fi, serr := os.Lstat(link); serr == nil && fi.Mode()&os.ModeSymlink == 0 {
			return Result{}, fmt.Errorf("%s exists and is not a symlink", p.Link)
		}
		return Result{}, fmt.Errorf("readlink %s: %w", p.Link, err)
	}
	from := "(none)"
	if cur != "" {
		from = filepath.Base(cur)
	}
	res := Result{Changed: true, Msg: fmt.Sprintf("%s -> %s", from, p.SHA256[:12]),
		Diff: fmt.Sprintf("~ %s: %s -> %s\n", p.Link, from, p.SHA256)}
	if env.Check {
		return res, nil
	}
	if err := os.MkdirAll(filepath.Dir(link), 0755); err != nil {
		return Result{}, fmt.Errorf("mkdir %s: %w", filepath.Dir(p.Link), err)
	}
	return res, Symlink(target, link)
}

// HashFile returns the hex sha256 of a file.
func HashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func verifyHash(path, want string) error {
	got, err := HashFile(path)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("store file %s has sha256 %s: corrupt, re-upload it", path, got)
	}
	return nil
}
