package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// proc is one subprocess the bench started: its own process group (so the whole tree is
// stopped), Pdeathsig (so a crashed bench does not leave it behind), output to a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	logFile *os.File
	exited  chan struct{} // closed once Wait returned; err is then set
	err     error
}

func startProc(name, bin string, args []string, dir, logPath string) (*proc, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, logFile: logFile, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// dead reports whether the process has exited, with its wait status.
func (p *proc) dead() (bool, error) {
	select {
	case <-p.exited:
		return true, p.err
	default:
		return false, nil
	}
}

// signal sends sig to the process group.
func (p *proc) signal(sig syscall.Signal) { _ = syscall.Kill(-p.pid(), sig) }

// wait waits for the exit up to grace, then kills the group and waits for good.
func (p *proc) wait(grace time.Duration) {
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.signal(syscall.SIGKILL)
		<-p.exited
	}
	p.logFile.Close()
}

// stopAll sends SIGTERM to every process's group at once and waits for each (SIGKILL after grace).
func stopAll(ps []*proc, grace time.Duration) {
	for _, p := range ps {
		p.signal(syscall.SIGTERM)
	}
	for _, p := range ps {
		p.wait(grace)
	}
}

// tail is the end of the process's output on one line, for error messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.logPath)
	b = bytes.TrimSpace(b)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	if len(b) == 0 {
		return "(no output)"
	}
	return strings.ReplaceAll(string(b), "\n", " | ")
}
