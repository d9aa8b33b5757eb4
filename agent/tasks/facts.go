package tasks

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/drover/drover/agent/protocol"
)

// runFacts never changes anything and is the same in check mode.
func runFacts(ctx context.Context, env *Env, t protocol.Task) (Result, error) {
	var p protocol.FactsParams
	if len(t.Params) > 0 {
		if err := decode(t, &p); err != nil {
			return Result{}, err
		}
	}
	f := Gather(ctx, env.Root, p.EC2)
	return Result{Facts: f, Msg: f.OSPretty}, nil
}

// Gather collects node facts; missing sources leave fields empty.
func Gather(ctx context.Context, root string, ec2 bool) *protocol.Facts {
	f := &protocol.Facts{CPUs: runtime.NumCPU(), Arch: runtime.GOARCH}
	f.Hostname, _ = os.Hostname()
	osr := root + "/etc/os-release"
	if _, err := os.Stat(osr); err != nil {
		osr = root + "/usr/lib/os-release"
	}
	if kv, err := readKV(osr); err == nil {
		f.OSID, f.OSVersion, f.OSPretty = kv["ID"], kv["VERSION_ID"], kv["PRETTY_NAME"]
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		f.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if kv, err := readMeminfo("/proc/meminfo"); err == nil {
		f.MemTotalBytes = kv
	}
	if ifs, err := net.Interfaces(); err == nil {
		for _, i := range ifs {
			if i.Flags&net.FlagLoopback != 0 || i.Flags&net.FlagUp == 0 {
				continue
			}
			addrs, _ := i.Addrs()
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
					f.IPv4 = append(f.IPv4, ipn.IP.String())
				}
			}
		}
	}
	if root == "" {
		if _, err := os.Stat("/run/systemd/system"); err == nil {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			f.SystemdVersion = systemdVersion(sctx)
			cancel()
		}
	}
	if ec2 {
		f.EC2 = ec2Metadata(ctx)
	}
	return f
}

func readKV(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		} else {
			v = strings.Trim(v, `'"`)
		}
		out[k] = v
	}
	return out, nil
}

func readMeminfo(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseUint(fields[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, io.ErrUnexpectedEOF
}

// ec2Metadata asks IMDSv2 with short timeouts; off EC2 it returns nil quickly.
func ec2Metadata(ctx context.Context) map[string]string {
	ctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer cancel()
	const base = "http://169.254.169.254/latest"
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, base+"/api/token", nil)
	req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	tok, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil
	}
	out := map[string]string{}
	for _, k := range []string{"instance-id", "instance-type", "placement/availability-zone", "local-ipv4", "public-ipv4", "public-hostname", "local-hostname"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/meta-data/"+k, nil)
		req.Header.Set("X-aws-ec2-metadata-token", string(tok))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			break
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode == 200 {
			out[k] = string(b)
		}
	}
	return out
}
