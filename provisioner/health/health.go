// Package health proves a drover cluster healthy: coordinator quorum, every inventory broker
// registered and reachable at its advertised listener, no offline or under-replicated partitions,
// and a produce/consume canary. Every connection goes through a Dialer, so the controller can reach
// the services through its SSH connections when only port 22 is open.
package health

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Dialer opens a connection to addr ("host:port" as the service advertises it).
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// Target is one inventory node as the checks see it.
type Target struct {
	Host string `json:"host"`
	ID   int    `json:"id"`
	Addr string `json:"addr"` // host:port of the service
}

// FourLetter sends a ZooKeeper four-letter word and returns the whole reply (the server closes).
func FourLetter(ctx context.Context, dial Dialer, addr, word string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, word); err != nil {
		return "", fmt.Errorf("send %s: %w", word, err)
	}
	b, err := io.ReadAll(c)
	if err != nil && len(b) == 0 {
		return "", fmt.Errorf("read %s reply: %w", word, err)
	}
	return string(b), nil
}

// Member is one coordinator's view of itself, from `srvr` and `mntr`.
type Member struct {
	Target
	Mode            string `json:"mode"` // leader, follower, standalone, or "" when not serving
	Zxid            uint64 `json:"zxid"`
	SyncedFollowers int    `json:"synced_followers,omitempty"`
	Err             string `json:"error,omitempty"`
}

// ParseSrvr reads the Mode and Zxid lines of a `srvr` reply.
func ParseSrvr(s string) (mode string, zxid uint64, err error) {
	if strings.Contains(s, "not currently serving") {
		return "", 0, fmt.Errorf("not serving requests (no quorum)")
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Mode":
			mode = v
		case "Zxid":
			zxid, _ = strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 64)
		}
	}
	if mode == "" {
		return "", 0, fmt.Errorf("srvr reply has no Mode line: %q", firstLine(s))
	}
	return mode, zxid, nil
}

// ParseMntr reads `mntr` key/value lines.
func ParseMntr(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(l, "\t"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	if len(l) > 80 {
		l = l[:80]
	}
	return l
}

// Quorum is the coordinator half of the report.
type Quorum struct {
	Members  []Member `json:"members"`
	Leader   string   `json:"leader,omitempty"`
	Problems []string `json:"problems,omitempty"`
}

// CheckQuorum asks every member for srvr (and the leader for mntr): healthy means exactly one
// leader, every other member a follower, and the leader counting all of them as synced.
func CheckQuorum(ctx context.Context, dial Dialer, members []Target) Quorum {
	q := Quorum{Members: make([]Member, len(members))}
	done := make(chan struct{}, len(members))
	for i, t := range members {
		go func(i int, t Target) {
			defer func() { done <- struct{}{} }()
			m := Member{Target: t}
			reply, err := FourLetter(ctx, dial, t.Addr, "srvr")
			if err == nil {
				m.Mode, m.Zxid, err = ParseSrvr(reply)
			}
			if err == nil && m.Mode == "leader" {
				if r, err2 := FourLetter(ctx, dial, t.Addr, "mntr"); err2 == nil {
					m.SyncedFollowers, _ = strconv.Atoi(ParseMntr(r)["zk_synced_followers"])
				}
			}
			if err != nil {
				m.Err = err.Error()
			}
			q.Members[i] = m
		}(i, t)
	}
	for range members {
		<-done
	}
	var leaders []string
	for _, m := range q.Members {
		switch {
		case m.Err != "":
			q.Problems = append(q.Problems, fmt.Sprintf("coordinator %s: %s", m.Host, m.Err))
		case m.Mode == "leader" || (m.Mode == "standalone" && len(members) == 1):
			leaders = append(leaders, m.Host)
			if m.Mode == "leader" && m.SyncedFollowers < len(members)-1 {
				q.Problems = append(q.Problems, fmt.Sprintf("coordinator %s leads but counts %d of %d followers as synced", m.Host, m.SyncedFollowers, len(members)-1))
			}
		case m.Mode != "follower":
			q.Problems = append(q.Problems, fmt.Sprintf("coordinator %s: unexpected mode %q", m.Host, m.Mode))
		}
	}
	switch len(leaders) {
	case 1:
		q.Leader = leaders[0]
	case 0:
		q.Problems = append(q.Problems, "no coordinator leads")
	default:
		sort.Strings(leaders)
		q.Problems = append(q.Problems, "more than one coordinator claims to lead: "+strings.Join(leaders, ", "))
	}
	return q
}
