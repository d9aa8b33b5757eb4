package coordinator

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// marker records who owns a data dir. etcd itself would happily start a member on another
// member's data, or on a different cluster's data with a new server list, and then either
// impersonate that member or fail in confusing ways; the marker turns both into a clear
// refusal before etcd touches anything.
type marker struct {
	MyID         uint64    `json:"myid"`
	Member       string    `json:"member"`
	ClusterToken string    `json:"cluster_token"`
	Created      time.Time `json:"created"`
}

// DataDirError is a refusal to use a data dir that belongs to someone else. Retrying cannot
// fix it (systemd units should not restart on it); an operator must.
type DataDirError struct{ Msg string }

func (e *DataDirError) Error() string { return e.Msg }

func refuse(format string, args ...any) error {
	return &DataDirError{Msg: fmt.Sprintf(format, args...)}
}

// prepareDataDir creates dataDir if needed and checks or writes the ownership marker. It
// never deletes anything.
func prepareDataDir(cfg *Config) error {
	dir := cfg.DataDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "version-2")); err == nil {
		return refuse("data dir %s holds Apache ZooKeeper data (version-2/); drover-coordinator will not use it: point dataDir at an empty directory", dir)
	}
	path := filepath.Join(dir, MarkerFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		var mk marker
		if err := json.Unmarshal(b, &mk); err != nil {
			return refuse("data dir marker %s is corrupt (%v); refusing to start", path, err)
		}
		if mk.MyID != cfg.MyID {
			return refuse("data dir %s belongs to myid %d (member %s), but myid is %d: refusing to start as another member", dir, mk.MyID, mk.Member, cfg.MyID)
		}
		if mk.ClusterToken != cfg.Token() {
			return refuse("data dir %s belongs to cluster %q, but this config is cluster %q (derived from the server list): refusing to start; if the server list was changed on purpose, set drover.clusterToken=%s", dir, mk.ClusterToken, cfg.Token(), mk.ClusterToken)
		}
		return nil
	case errors.Is(err, os.ErrNotExist):
	default:
		return fmt.Errorf("read data dir marker: %w", err)
	}
	// No marker: only an empty etcd data dir may be claimed. The marker is written before etcd
	// creates anything, so etcd data without a marker was not made by this program.
	if _, err := os.Stat(filepath.Join(dir, "etcd", "member")); err == nil {
		return refuse("data dir %s has etcd data but no %s: refusing to adopt it", dir, MarkerFile)
	}
	mk := marker{MyID: cfg.MyID, Member: MemberName(cfg.MyID), ClusterToken: cfg.Token(), Created: time.Now().UTC()}
	b, err = json.MarshalIndent(mk, "", "  ")
	if err != nil {
		return fmt.Errorf("encode data dir marker: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write data dir marker: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write data dir marker: %w", err)
	}
	return nil
}
