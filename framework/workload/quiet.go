package workload

import (
	"context"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
)

// A wait that returns (WaitPod, WaitNone) ends its watch's context, and
// client-go's reflector reports the list or watch that this interrupts
// as an unhandled "Failed to watch ... context canceled" error on stderr,
// which reads like a failure in a suite's log. Errors reported under a
// context that has ended are dropped; every other one still goes to
// client-go's handlers (klog, and its rate limit).
func init() {
	handlers := utilruntime.ErrorHandlers
	utilruntime.ErrorHandlers = []utilruntime.ErrorHandler{
		func(ctx context.Context, err error, msg string, keysAndValues ...any) {
			if endedWatch(ctx) {
				return
			}
			for _, h := range handlers {
				h(ctx, err, msg, keysAndValues...)
			}
		},
	}
}

// endedWatch reports whether an error was reported under a context that
// had already ended (nil: a caller without one, never dropped).
func endedWatch(ctx context.Context) bool {
	return ctx != nil && ctx.Err() != nil
}
