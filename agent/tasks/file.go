package tasks

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/drover/drover/agent/protocol"
)

func runFile(ctx context.Context, env *Env, t protocol.Task) (Result, error) {
	var p protocol.FileParams
	if err := decode(t, &p); err != nil {
		return Result{}, err
	}
	path, err := env.writable(t, p.Path)
	if err != nil {
		return Result{}, err
	}
	a, err := env.resolveAttrs(p.Mode, 0644, p.Owner, p.Group)
	if err != nil {
		return Result{}, err
	}
	return ensureFile(env, p.Path, path, []byte(p.Content), a, p.Secret)
}

// ensureFile makes realPath hold content with attributes a; nodePath names it in messages.
func ensureFile(env *Env, nodePath, realPath string, content []byte, a attrs, secret bool) (Result, error) {
	var old []byte
	fi, err := os.Lstat(realPath)
	exists := err == nil
	switch {
	case os.IsNotExist(err):
	case err != nil:
		return Result{}, fmt.Errorf("stat %s: %w", nodePath, err)
	case !fi.Mode().IsRegular():
		return Result{}, fmt.Errorf("%s exists and is not a regular file (%s)", nodePath, fi.Mode().Type())
	default:
		if old, err = os.ReadFile(realPath); err != nil {
			return Result{}, fmt.Errorf("read %s: %w", nodePath, err)
		}
	}
	var res Result
	contentChanged := !exists || !bytes.Equal(old, content)
	var drift []string
	if exists {
		drift = a.drift(fi)
	}
	if !contentChanged && len(drift) == 0 {
		return res, nil
	}
	res.Changed = true
	if contentChanged {
		from := "a" + nodePath
		if !exists {
			from = "/dev/null"
		}
		switch {
		case secret:
			res.Diff = fmt.Sprintf("--- %s\n+++ b%s\n(secret content redacted: %d -> %d bytes)\n", from, nodePath, len(old), len(content))
		case !isText(old) || !isText(content):
			res.Diff = fmt.Sprintf("--- %s\n+++ b%s\n(binary content: %d -> %d bytes)\n", from, nodePath, len(old), len(content))
		default:
			res.Diff = UnifiedDiff(from, "b"+nodePath, string(old), string(content))
		}
		if exists {
			res.Msg = "content changed"
		} else {
			res.Msg = "created"
		}
	}
	if len(drift) > 0 {
		if res.Msg != "" {
			res.Msg += ", "
		}
		res.Msg += strings.Join(drift, ", ")
		if !contentChanged {
			res.Diff = "~ " + nodePath + ": " + strings.Join(drift, ", ") + "\n"
		}
	}
	if env.Check {
		return res, nil
	}
	if contentChanged {
		if err := os.MkdirAll(filepath.Dir(realPath), 0755); err != nil {
			return Result{}, fmt.Errorf("mkdir parent of %s: %w", nodePath, err)
		}
		// Unmanaged owner of an existing file is kept: the temp file would otherwise be root's.
		uid, gid := a.uid, a.gid
		if exists {
			if st := statT(fi); st != nil {
				if uid < 0 {
					uid = int(st.Uid)
				}
				if gid < 0 {
					gid = int(st.Gid)
				}
			}
		}
		if err := WriteAtomic(realPath, bytes.NewReader(content), a.mode, uid, gid); err != nil {
			return Result{}, err
		}
		return res, nil
	}
	return res, a.apply(realPath)
}

func isText(b []byte) bool {
	return bytes.IndexByte(b, 0) < 0
}
