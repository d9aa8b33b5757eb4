package tasks

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// WriteAtomic writes the bytes from r to path through a temp file in the same directory:
// write, fsync, chmod/chown, rename, fsync the directory. A crash at any point leaves path with
// either its old or its new content. uid/gid < 0 leave ownership to the process defaults.
func WriteAtomic(path string, r io.Reader, mode os.FileMode, uid, gid int) error {
	dir, base := filepath.Split(path)
	tmp, err := tempFile(dir, "."+base+".drover-")
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
	if _, err := io.Copy(tmp, r); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", name, err)
	}
	if uid >= 0 || gid >= 0 {
		if err := tmp.Chown(uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", name, err)
		}
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	if err := os.Rename(name, path); err != nil {
		return fmt.Errorf("rename into %s: %w", path, err)
	}
	ok = true
	syncDir(dir)
	return nil
}

func tempFile(dir, prefix string) (*os.File, error) {
	var b [6]byte
	for range 10 {
		_, _ = rand.Read(b[:])
		name := filepath.Join(dir, prefix+hex.EncodeToString(b[:]))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0600)
		if os.IsExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create temp file in %s: %w", dir, err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("create temp file in %s: too many collisions", dir)
}

// Symlink points link at target, replacing any previous link atomically (temp link + rename).
func Symlink(target, link string) error {
	dir, base := filepath.Split(link)
	var b [6]byte
	_, _ = rand.Read(b[:])
	tmp := filepath.Join(dir, "."+base+".drover-"+hex.EncodeToString(b[:]))
	if err := os.Symlink(target, tmp); err != nil {
		return fmt.Errorf("symlink %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename symlink into %s: %w", link, err)
	}
	syncDir(dir)
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// lookupID finds name (or a numeric id) in a passwd/group style file under the env root.
func (e *Env) lookupID(file, name string) (int, error) {
	if name == "" {
		return -1, nil
	}
	if n, err := strconv.Atoi(name); err == nil {
		return n, nil
	}
	p, err := e.Path(file)
	if err != nil {
		return 0, err
	}
	ent, err := readEntries(p)
	if err != nil {
		return 0, err
	}
	f, ok := ent[name]
	if !ok || len(f) < 3 {
		return 0, fmt.Errorf("%s: no entry %q", file, name)
	}
	id, err := strconv.Atoi(f[2])
	if err != nil {
		return 0, fmt.Errorf("%s: entry %q: bad id %q", file, name, f[2])
	}
	return id, nil
}

// readEntries parses a colon-separated database (/etc/passwd, /etc/group) keyed by name.
func readEntries(path string) (map[string][]string, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return map[string][]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, ":")
		out[fields[0]] = fields
	}
	return out, sc.Err()
}

// attrs is the ownership/mode part of a file or directory's desired state.
type attrs struct {
	mode     os.FileMode
	setMode  bool
	uid, gid int // -1: unmanaged
	owner    string
	group    string
}

func (e *Env) resolveAttrs(mode string, defMode os.FileMode, owner, group string) (attrs, error) {
	a := attrs{uid: -1, gid: -1, owner: owner, group: group}
	m, err := parseMode(mode, defMode)
	if err != nil {
		return a, err
	}
	a.mode, a.setMode = m, true
	if a.uid, err = e.lookupID("/etc/passwd", owner); err != nil {
		return a, err
	}
	if a.gid, err = e.lookupID("/etc/group", group); err != nil {
		return a, err
	}
	return a, nil
}

// drift lists how fi differs from a ("mode 0600 -> 0644", ...).
func (a attrs) drift(fi os.FileInfo) []string {
	var out []string
	cur := fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky)
	if a.setMode && cur != a.mode {
		out = append(out, fmt.Sprintf("mode %s -> %s", fmtMode(cur), fmtMode(a.mode)))
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	if st != nil && a.uid >= 0 && int(st.Uid) != a.uid {
		out = append(out, fmt.Sprintf("owner %d -> %s(%d)", st.Uid, a.owner, a.uid))
	}
	if st != nil && a.gid >= 0 && int(st.Gid) != a.gid {
		out = append(out, fmt.Sprintf("group %d -> %s(%d)", st.Gid, a.group, a.gid))
	}
	return out
}

func (a attrs) apply(path string) error {
	if a.uid >= 0 || a.gid >= 0 {
		if err := os.Lchown(path, a.uid, a.gid); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
	}
	// chmod after chown: chown clears setuid/setgid bits.
	if a.setMode {
		if err := os.Chmod(path, a.mode); err != nil {
			return fmt.Errorf("chmod %s: %w", path, err)
		}
	}
	return nil
}
