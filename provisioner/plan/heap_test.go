package plan

import "testing"

func TestParseHeap(t *testing.T) {
	good := map[string]int64{"1g": 1 << 30, "1G": 1 << 30, "512m": 512 << 20, "1536M": 1536 << 20,
		"2gb": 2 << 30, "1GiB": 1 << 30, "-Xmx4g": 4 << 30, "0.5g": 512 << 20, "65536k": 64 << 20}
	for in, want := range good {
		h, err := ParseHeap(in)
		if err != nil || h.Bytes != want {
			t.Errorf("ParseHeap(%q) = %d, %v; want %d", in, h.Bytes, err, want)
		}
	}
	for _, in := range []string{"", "lots", "1x", "-1g", "0", "10m", "2000t", "1 g g", "g"} {
		if _, err := ParseHeap(in); err == nil {
			t.Errorf("ParseHeap(%q) accepted nonsense", in)
		}
	}
	h, _ := ParseHeap("1g")
	if h.GoMemLimit() != "1024MiB" || h.MemoryHigh() != "1280M" || h.MemoryMax() != "1600M" {
		t.Errorf("1g -> %s %s %s", h.GoMemLimit(), h.MemoryHigh(), h.MemoryMax())
	}
}
