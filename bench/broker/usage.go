package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// usage is what a produce window cost the machine, from /proc: CPU of the target's own processes
// and of the bench process (the client, plus kfake or the null sink when those are the target),
// the whole machine's busy and iowait CPU, bytes the target's processes dirtied for storage
// (/proc/PID/io write_bytes: each replica's copy counts), and the device the log dir is on
// (/proc/diskstats: bytes written and the time it was busy). The device and machine counters are
// machine-wide: other work on a shared machine shows up in them.
type usage struct {
	wall       time.Duration
	targetCPU  time.Duration // target processes (subprocesses only; 0 when none)
	benchCPU   time.Duration // this process
	machBusy   float64       // CPU-seconds, all cores, excluding idle and iowait
	machIOWait float64       // CPU-seconds in iowait
	dirtied    int64         // write_bytes of the target processes
	devWritten int64         // bytes written to the device
	devBusy    time.Duration // the device's io_ticks
	hasProcs   bool
	hasDev     bool
}

type snapshot struct {
	at         time.Time
	targetCPU  time.Duration
	benchCPU   time.Duration
	busy, iow  float64
	dirtied    int64
	devWritten int64
	devBusy    time.Duration
}

type sampler struct {
	pids []int
	dev  string // "major minor" of the log dir's device, "" when unknown
}

const clkTck = 100 // USER_HZ on Linux

func newSampler(pids []int, logDir string) *sampler {
	s := &sampler{pids: pids}
	if logDir != "" {
		var st syscall.Stat_t
		if syscall.Stat(logDir, &st) == nil {
			dev := uint64(st.Dev)
			major := (dev>>8)&0xfff | (dev>>32)&^0xfff
			minor := dev&0xff | (dev>>12)&^0xff
			s.dev = fmt.Sprintf("%d %d", major, minor)
		}
	}
	return s
}

func (s *sampler) snap() snapshot {
	sn := snapshot{at: time.Now(), benchCPU: procCPU(os.Getpid())}
	for _, pid := range s.pids {
		sn.targetCPU += procCPU(pid)
		sn.dirtied += procWriteBytes(pid)
	}
	sn.busy, sn.iow = machineCPU()
	if s.dev != "" {
		sn.devWritten, sn.devBusy = diskStats(s.dev)
	}
	return sn
}

func (s *sampler) diff(a, b snapshot) usage {
	return usage{
		wall:       b.at.Sub(a.at),
		targetCPU:  b.targetCPU - a.targetCPU,
		benchCPU:   b.benchCPU - a.benchCPU,
		machBusy:   b.busy - a.busy,
		machIOWait: b.iow - a.iow,
		dirtied:    b.dirtied - a.dirtied,
		devWritten: b.devWritten - a.devWritten,
		devBusy:    b.devBusy - a.devBusy,
		hasProcs:   len(s.pids) > 0,
		hasDev:     s.dev != "",
	}
}

// procCPU is utime+stime of every thread of pid (0 when it cannot be read).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clkTck
}

func procWriteBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// machineCPU is the machine's busy (not idle, not iowait) and iowait CPU-seconds since boot.
func machineCPU() (busy, iowait float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	var total float64
	vals := make([]float64, 8) // user nice system idle iowait irq softirq steal
	for i := range vals {
		vals[i], _ = strconv.ParseFloat(f[i+1], 64)
		total += vals[i]
	}
	return (total - vals[3] - vals[4] - vals[7]) / clkTck, vals[4] / clkTck
}

// diskStats is the bytes written to and the busy time of device "major minor".
func diskStats(dev string) (int64, time.Duration) {
	b, err := os.ReadFile("/proc/diskstats")
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 13 || f[0]+" "+f[1] != dev {
			continue
		}
		sectors, _ := strconv.ParseInt(f[9], 10, 64)
		ticks, _ := strconv.ParseInt(f[12], 10, 64)
		return sectors * 512, time.Duration(ticks) * time.Millisecond
	}
	return 0, 0
}

// loadAvg is /proc/loadavg's three averages.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " / ")
}
