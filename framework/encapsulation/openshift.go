package encapsulation

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/dynamic"

	"github.com/nodeconform/nodeconform/fixtures"
	"github.com/nodeconform/nodeconform/framework/openshift"
)

// MachineConfigFixtures are the seeds' MachineConfigs enabling kubens.service.
var MachineConfigFixtures = []string{"encapsulation/99-kubens-master.yaml", "encapsulation/99-kubens-worker.yaml"}

// ApplyMachineConfigs creates (or updates) the kubens MachineConfigs and
// waits until every MachineConfigPool is Updated.
func ApplyMachineConfigs(ctx context.Context, dc dynamic.Interface, timeout, poll time.Duration) error {
	for _, f := range MachineConfigFixtures {
		data := fixtures.MustRead(f)
		if _, err := ParseMachineConfig(data); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if _, err := openshift.ApplyYAML(ctx, dc, openshift.MachineConfigGVR, data); err != nil {
			return err
		}
	}
	return openshift.WaitPoolsUpdated(ctx, dc, timeout, poll)
}

// DeleteMachineConfigs removes the kubens MachineConfigs and waits for the
// pools to roll back.
func DeleteMachineConfigs(ctx context.Context, dc dynamic.Interface, timeout, poll time.Duration) error {
	for _, f := range MachineConfigFixtures {
		mc, err := ParseMachineConfig(fixtures.MustRead(f))
		if err != nil {
			return err
		}
		if err := openshift.DeleteIgnoringAbsent(ctx, dc, openshift.MachineConfigGVR, mc.Metadata.Name); err != nil {
			return err
		}
	}
	return openshift.WaitPoolsUpdated(ctx, dc, timeout, poll)
}
