package log

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// EpochFile is the file name of the leader-epoch cache, in Kafka's
// leader-epoch-checkpoint format: a version line (0), a count line, then
// "<epoch> <startOffset>" per line.
const EpochFile = "leader-epoch-checkpoint"

// EpochEntry says that records from StartOffset on were written under Epoch.
type EpochEntry struct {
	Epoch       int32
	StartOffset int64
}

// EpochCache maps leader epochs to the first offset written in each. The
// replication code uses it to answer OffsetForLeaderEpoch and to find the
// truncation point of a returning replica. Callers hold the Log lock.
type EpochCache struct {
	path    string
	entries []EpochEntry
}

func loadEpochCache(dir string) (*EpochCache, error) {
	c := &EpochCache{path: filepath.Join(dir, EpochFile)}
	data, err := os.ReadFile(c.path)
	if os.IsNotExist(err) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read epoch cache: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line := 0
	for sc.Scan() {
		line++
		if line <= 2 {
			continue // version, count
		}
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		e, err1 := strconv.ParseInt(f[0], 10, 32)
		o, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		c.entries = append(c.entries, EpochEntry{int32(e), o})
	}
	return c, nil
}

func (c *EpochCache) flush() error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "0\n%d\n", len(c.entries))
	for _, e := range c.entries {
		fmt.Fprintf(&b, "%d %d\n", e.Epoch, e.StartOffset)
	}
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write epoch cache: %w", err)
	}
	return os.Rename(tmp, c.path)
}

// Entries returns a copy of the cache.
func (c *EpochCache) Entries() []EpochEntry { return append([]EpochEntry(nil), c.entries...) }

// Latest returns the newest epoch, or -1.
func (c *EpochCache) Latest() int32 {
	if len(c.entries) == 0 {
		return -1
	}
	return c.entries[len(c.entries)-1].Epoch
}

// assign records that epoch starts at offset, if epoch is newer than the latest.
func (c *EpochCache) assign(epoch int32, offset int64) error {
	if epoch < 0 || epoch <= c.Latest() {
		return nil
	}
	c.entries = append(c.entries, EpochEntry{epoch, offset})
	return c.flush()
}

// EndOffsetFor answers OffsetForLeaderEpoch: the largest epoch <= epoch we
// know of, and the start offset of the next epoch after it (or leo when it is
// the latest). (-1, -1) when nothing is known at or below epoch.
func (c *EpochCache) EndOffsetFor(epoch int32, leo int64) (int32, int64) {
	for i := len(c.entries) - 1; i >= 0; i-- {
		if c.entries[i].Epoch <= epoch {
			if i == len(c.entries)-1 {
				return c.entries[i].Epoch, leo
			}
			return c.entries[i].Epoch, c.entries[i+1].StartOffset
		}
	}
	return -1, -1
}

// truncateFromEnd drops epochs that start at or after offset.
func (c *EpochCache) truncateFromEnd(offset int64) error {
	n := len(c.entries)
	for n > 0 && c.entries[n-1].StartOffset >= offset {
		n--
	}
	if n == len(c.entries) {
		return nil
	}
	c.entries = c.entries[:n]
	return c.flush()
}

// truncateFromStart forgets epochs wholly before offset, keeping the one that covers it.
func (c *EpochCache) truncateFromStart(offset int64) error {
	i := 0
	for i+1 < len(c.entries) && c.entries[i+1].StartOffset <= offset {
		i++
	}
	if i == 0 && (len(c.entries) == 0 || c.entries[0].StartOffset >= offset) {
		return nil
	}
	c.entries = c.entries[i:]
	if c.entries[0].StartOffset < offset {
		c.entries[0].StartOffset = offset
	}
	return c.flush()
}
