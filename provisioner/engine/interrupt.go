package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// ErrInterrupted is the cancel cause after the first Ctrl-C.
var ErrInterrupted = errors.New("interrupted")

// exit is os.Exit, replaced in tests.
var exit = os.Exit

// WithInterrupt returns a context canceled (cause ErrInterrupted) by the first SIGINT or SIGTERM:
// in-flight steps stop cleanly (the agent writes atomically, so no node keeps a half-written file)
// and the run ends with the recap and exit code 130. A second signal exits at once with 130.
// msg (e.g. stderr) gets a one-line notice; stop releases the signal handler.
func WithInterrupt(parent context.Context, msg io.Writer) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		n := 0
		for {
			select {
			case <-ch:
				n++
				if n == 1 {
					if msg != nil {
						fmt.Fprintln(msg, "\ninterrupted: finishing in-flight steps (Ctrl-C again to exit now)")
					}
					cancel(ErrInterrupted)
					continue
				}
				if msg != nil {
					fmt.Fprintln(msg, "interrupted twice: exiting")
				}
				exit(ExitInterrupted)
			case <-done:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(context.Canceled)
	}
}

// SetExitForTest replaces the immediate-exit function; it returns a restore func.
func SetExitForTest(f func(int)) (restore func()) {
	old := exit
	exit = f
	return func() { exit = old }
}
