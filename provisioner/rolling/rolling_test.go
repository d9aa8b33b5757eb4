package rolling

import (
	"testing"

	"github.com/drover/drover/provisioner/health"
)

func TestPickLeavesLeaderAndControllerLast(t *testing.T) {
	rep := health.Report{Quorum: health.Quorum{Leader: "zk1"}, Brokers: health.Brokers{Controller: 5}}
	pending := []Node{{Host: "zk1", Role: "coordinator", ID: 1}, {Host: "zk2", Role: "coordinator", ID: 2},
		{Host: "k5", Role: "broker", ID: 5}, {Host: "k6", Role: "broker", ID: 6}, {Host: "zk3", Role: "coordinator", ID: 3}}
	var order []string
	for _, role := range []string{"coordinator", "broker"} {
		for {
			n, ok := pick(pending, role, rep)
			if !ok {
				break
			}
			pending = remove(pending, n)
			order = append(order, n.Host)
		}
	}
	want := "zk2 zk3 zk1 k6 k5"
	if got := join(order); got != want {
		t.Fatalf("order %q, want %q", got, want)
	}
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}
