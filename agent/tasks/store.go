package tasks

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
)

// Has returns the subset of hashes present in storeDir (a real path).
func Has(storeDir string, hashes []string) ([]string, error) {
	var out []string
	for _, h := range hashes {
		if !hashRE.MatchString(h) {
			return nil, fmt.Errorf("bad sha256 %q", h)
		}
		if fi, err := os.Stat(filepath.Join(storeDir, h)); err == nil && fi.Mode().IsRegular() {
			out = append(out, h)
		}
	}
	return out, nil
}

// Put stores the (optionally compressed) stream r as storeDir/hash: a temp file in the store is
// written, fsynced, verified against hash, chmod'ed and only then renamed, so the final path never
// holds a partial or wrong file. compression is "", "none", "gzip" or "zstd".
func Put(storeDir, hash, compression string, mode os.FileMode, r io.Reader) error {
	if !hashRE.MatchString(hash) {
		return fmt.Errorf("bad sha256 %q", hash)
	}
	if err := os.MkdirAll(storeDir, 0755); err != nil {
		return fmt.Errorf("mkdir %s: %w", storeDir, err)
	}
	switch compression {
	case "", "none":
	case "gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		r = zr
	default:
		return fmt.Errorf("unknown compression %q", compression)
	}
	final := filepath.Join(storeDir, hash)
	tmp, err := tempFile(storeDir, ".put-"+hash[:12]+"-")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), r)
	if err != nil {
		return fmt.Errorf("receive %s: %w", hash[:12], err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != hash {
		return fmt.Errorf("received %d bytes with sha256 %s, want %s", n, got, hash)
	}
	if err := tmp.Chmod(mode); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, final); err != nil {
		return err
	}
	ok = true
	syncDir(storeDir)
	return nil
}
