// Command testsummary reads `go test -json` on stdin and prints what a CI log needs: one line per
// package, every skipped test with its reason (a skip is never silent), and the whole output of
// every failed test. It exits 1 when anything failed.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

func main() {
	out := map[string][]string{} // package/test -> output lines
	failed := false
	var skips, fails []string
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Println(sc.Text()) // build errors and the like come as plain text
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			out[key] = append(out[key], e.Output)
		case "skip":
			if e.Test != "" {
				skips = append(skips, fmt.Sprintf("SKIP %s %s: %s", e.Package, e.Test, reason(out[key])))
			}
			delete(out, key)
		case "fail":
			failed = true
			if e.Test != "" {
				fails = append(fails, fmt.Sprintf("--- FAIL %s %s (%.1fs)\n%s", e.Package, e.Test, e.Elapsed, strings.Join(out[key], "")))
			} else {
				fmt.Printf("FAIL\t%s\t%.1fs\n", e.Package, e.Elapsed)
				if len(out[key]) > 0 && len(fails) == 0 {
					fmt.Print(strings.Join(out[key], "")) // e.g. a panic or build failure outside a test
				}
			}
			delete(out, key)
		case "pass":
			if e.Test == "" {
				fmt.Printf("ok\t%s\t%.1fs\n", e.Package, e.Elapsed)
			}
			delete(out, key)
		}
	}
	for _, s := range skips {
		fmt.Println(s)
	}
	for _, f := range fails {
		fmt.Print(f)
	}
	if failed {
		os.Exit(1)
	}
}

// reason is the skip message: the test's last output lines minus the "--- SKIP" header.
func reason(lines []string) string {
	var keep []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		keep = append(keep, t)
	}
	if len(keep) == 0 {
		return "(no reason given)"
	}
	return strings.Join(keep, " / ")
}
