package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/onsi/gomega"
)

func TestStopOnRefusal(t *testing.T) {
	refused := errors.New(`unable to upgrade connection: pods "client" is forbidden: ValidatingAdmissionPolicy 'deny-exec' denied request`)
	calls := 0
	f := stopOnRefusal(func(ctx context.Context) (int, error) {
		calls++
		return 0, refused
	})
	var failure string
	g := gomega.NewGomega(func(message string, _ ...int) { failure = message })
	start := time.Now()
	g.Eventually(context.Background(), f).WithTimeout(5 * time.Second).WithPolling(10 * time.Millisecond).Should(gomega.Equal(1))
	if calls != 1 || time.Since(start) > time.Second {
		t.Errorf("polled %d times in %s: a refusal must end the polling", calls, time.Since(start))
	}
	if !strings.Contains(failure, "deny-exec") || !strings.Contains(failure, "refused it, and will again") {
		t.Errorf("failure does not name the refusal: %s", failure)
	}

	// Other errors are polled as before.
	calls = 0
	g.Eventually(context.Background(), stopOnRefusal(func() error {
		calls++
		if calls < 3 {
			return errors.New("unable to upgrade connection: pod does not exist")
		}
		return nil
	})).WithTimeout(5 * time.Second).WithPolling(10 * time.Millisecond).Should(gomega.Succeed())
	if calls != 3 {
		t.Errorf("a transient error: polled %d times, want 3", calls)
	}
	// A function of Gomega (no error result) is left as it is.
	if _, ok := stopOnRefusal(func(g gomega.Gomega) {}).(func(gomega.Gomega)); !ok {
		t.Error("a func(Gomega) was wrapped")
	}
}
