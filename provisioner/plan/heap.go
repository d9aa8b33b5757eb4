package plan

import (
	"fmt"
	"strconv"
	"strings"
)

// Heap is a validated service memory budget, parsed from the inventory's `heap` variable.
// `heap: 1g` becomes GOMEMLIMIT=1024MiB for the Go services; systemd gets a margin above it
// (MemoryHigh throttles, MemoryMax kills) because GOMEMLIMIT is a soft target, not a cap.
type Heap struct {
	Bytes int64
	Raw   string
}

const (
	minHeap = 64 << 20 // below this the broker cannot hold its buffers
	maxHeap = 1 << 40  // 1 TiB: anything above is a typo
)

// ParseHeap accepts the forms users write for KAFKA_HEAP_OPTS and Ansible vars: 512m, 1g, 1G,
// 1536M, 2gb, 1GiB, 4096k, and a JVM-style -Xmx1g. A bare number is bytes.
func ParseHeap(s string) (Heap, error) {
	raw := s
	v := strings.TrimSpace(strings.ToLower(s))
	v = strings.TrimPrefix(v, "-xmx")
	if v == "" {
		return Heap{}, fmt.Errorf("heap %q: empty value", raw)
	}
	mult := int64(1)
	for _, suf := range []struct {
		s string
		m int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
		{"kb", 1 << 10}, {"mb", 1 << 20}, {"gb", 1 << 30}, {"tb", 1 << 40},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40}, {"b", 1}} {
		if strings.HasSuffix(v, suf.s) {
			v, mult = strings.TrimSuffix(v, suf.s), suf.m
			break
		}
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || n <= 0 {
		return Heap{}, fmt.Errorf("heap %q: want a size such as 512m, 1g or 2GiB", raw)
	}
	b := int64(n * float64(mult))
	if b < minHeap {
		return Heap{}, fmt.Errorf("heap %q: below the 64m minimum", raw)
	}
	if b > maxHeap {
		return Heap{}, fmt.Errorf("heap %q: above 1t, surely a typo", raw)
	}
	return Heap{Bytes: b, Raw: raw}, nil
}

// GoMemLimit is the GOMEMLIMIT value (MiB, the unit the Go runtime prints).
func (h Heap) GoMemLimit() string { return fmt.Sprintf("%dMiB", h.Bytes>>20) }

// MemoryHigh leaves 25% above the Go soft limit before systemd throttles.
func (h Heap) MemoryHigh() string { return fmt.Sprintf("%dM", (h.Bytes+h.Bytes/4)>>20) }

// MemoryMax leaves 50% plus 64 MiB before the kernel kills the service.
func (h Heap) MemoryMax() string { return fmt.Sprintf("%dM", (h.Bytes+h.Bytes/2+64<<20)>>20) }
