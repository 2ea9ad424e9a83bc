package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/nodeconform/nodeconform/framework/cost"
	"github.com/nodeconform/nodeconform/framework/probeapi"
)

// ReportArgs are the probe's arguments for a container that reads paths
// as it starts, prints them as its log's first line and then sleeps:
// ReadReport reads them back from the log, with an API request instead
// of an exec. For files the pod's own start fixes (its sysctls, its
// namespaces' view), reading them at start is reading them while it runs.
func ReportArgs(paths ...string) []string {
	return append([]string{"report-sleep"}, paths...)
}

// ReadReport returns the reads a container started with ReportArgs
// printed, waiting up to timeout for its first line (a container is Ready
// as it starts, its first write a moment later). A read the probe could
// not make is an error naming the pod.
func ReadReport(ctx context.Context, cs kubernetes.Interface, ns, pod, container string, timeout time.Duration) ([]probeapi.Read, error) {
	defer cost.Time(cost.PhaseLogRead, time.Now())
	var reads []probeapi.Read
	var last string
	if container == "" {
		container = chosenContainer(ns, pod)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		raw, err := cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Container: container}).DoRaw(ctx)
		// DoRaw's error for a 400 is generic ("the server rejected our
		// request for an unknown reason"); the reason is in the body.
		if container == "" && err != nil && (mustNameContainer(err) || mustNameContainer(errors.New(string(raw)))) {
			c, err := defaultContainer(ctx, ns, pod, func(ctx context.Context) (*corev1.Pod, error) {
				return cs.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
			})
			container = c
			return false, err
		}
		if err != nil {
			last = err.Error()
			return false, nil
		}
		var done bool
		reads, done, err = ParseReport(raw)
		last = fmt.Sprintf("log %q", raw)
		return done, err
	})
	if err != nil {
		return nil, fmt.Errorf("startup report of pod %s/%s: %w (last: %s)", ns, pod, err, last)
	}
	return reads, nil
}

// ParseReport decodes a report-sleep container's log: done is false until
// its first line is complete; a probe error line is returned as an error.
func ParseReport(log []byte) (reads []probeapi.Read, done bool, err error) {
	line, _, complete := bytes.Cut(log, []byte("\n"))
	if !complete {
		return nil, false, nil
	}
	if bytes.HasPrefix(bytes.TrimSpace(line), []byte("{")) {
		var e probeapi.Error
		if json.Unmarshal(line, &e) == nil && e.Error != "" {
			return nil, true, fmt.Errorf("the probe could not read: %s", e.Error)
		}
		return nil, true, fmt.Errorf("not a report: %q", line)
	}
	if err := json.Unmarshal(line, &reads); err != nil {
		return nil, true, fmt.Errorf("decode report %q: %w", line, err)
	}
	return reads, true, nil
}
