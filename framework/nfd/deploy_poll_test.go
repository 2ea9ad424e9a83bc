package nfd

import (
	"context"
	"errors"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// A permanent error ends the wait at once; any other is retried until
// the timeout.
func TestPollStopsOnPermanent(t *testing.T) {
	start := time.Now()
	err := poll(context.Background(), time.Minute, func() (bool, error) { return false, permanent{errors.New("cannot start")} })
	if err == nil || err.Error() != "cannot start" || time.Since(start) > 5*time.Second {
		t.Fatalf("got %v after %s", err, time.Since(start))
	}
	calls := 0
	err = poll(context.Background(), 500*time.Millisecond, func() (bool, error) { calls++; return false, errors.New("transient") })
	if err == nil || err.Error() != "transient" || calls < 2 {
		t.Fatalf("got %v after %d calls", err, calls)
	}
}

// nfd-master's ReplicaSet refused by a policy is a reason to stop
// waiting; a webhook's timeout is not.
func TestReplicaFailure(t *testing.T) {
	dep := func(msg string) *appsv1.Deployment {
		return &appsv1.Deployment{Status: appsv1.DeploymentStatus{Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionFalse, Message: "no"},
			{Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: msg},
		}}}
	}
	if got, ok := replicaFailure(dep(`pods "nfd-master-x" is forbidden: ValidatingAdmissionPolicy 'p' denied request: no`)); got != `FailedCreate: pods "nfd-master-x" is forbidden: ValidatingAdmissionPolicy 'p' denied request: no` || !ok {
		t.Errorf("refused: %q %v", got, ok)
	}
	if got, ok := replicaFailure(dep(`Internal error occurred: failed calling webhook "w": context deadline exceeded`)); got != "" || !ok {
		t.Errorf("timeout: %q %v", got, ok)
	}
	if got, ok := replicaFailure(&appsv1.Deployment{}); got != "" || ok {
		t.Errorf("no condition: %q %v", got, ok)
	}
}
