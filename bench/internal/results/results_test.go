package results

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMergeSectionKeepsOthers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "R.md")
	steps := []struct{ title, body string }{
		{"Broker", "b1"}, {"Fan-out", "f1"}, {"Broker", "b2\n\nmore"},
	}
	for _, s := range steps {
		if err := MergeSection(p, s.title, s.body); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(p)
	got := string(b)
	if !strings.HasPrefix(got, "# Benchmark results") || strings.Contains(got, "b1") ||
		!strings.Contains(got, "## Broker\n\nb2\n\nmore\n\n## Fan-out\n\nf1\n") {
		t.Fatalf("got:\n%s", got)
	}
}

func TestMedian(t *testing.T) {
	if Median([]float64{3, 1, 2}) != 2 || Median([]float64{4, 1, 2, 3}) != 2.5 {
		t.Fatal("median")
	}
}
