// Package openshift holds what nodeconform needs of OpenShift's machine
// configuration API: detecting it, and waiting for MachineConfigPools to
// roll out a change. Written for OpenShift; not run on kind (no such API).
package openshift

import (
	"context"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// OpenShift's machine configuration API.
var (
	KubeletConfigGVR     = schema.GroupVersionResource{Group: "machineconfiguration.openshift.io", Version: "v1", Resource: "kubeletconfigs"}
	MachineConfigGVR     = schema.GroupVersionResource{Group: "machineconfiguration.openshift.io", Version: "v1", Resource: "machineconfigs"}
	MachineConfigPoolGVR = schema.GroupVersionResource{Group: "machineconfiguration.openshift.io", Version: "v1", Resource: "machineconfigpools"}
)

// HasMachineConfigAPI reports whether the cluster serves MachineConfigs
// (OpenShift); kind and other clusters get the systemd path instead.
func HasMachineConfigAPI(dc discovery.DiscoveryInterface) (bool, error) {
	return hasResource(dc, MachineConfigGVR)
}

// hasResource reports whether the API server serves gvr; a group it does
// not know is an answer (false), not an error.
func hasResource(dc discovery.DiscoveryInterface, gvr schema.GroupVersionResource) (bool, error) {
	res, err := dc.ServerResourcesForGroupVersion(gvr.GroupVersion().String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	for _, r := range res.APIResources {
		if r.Name == gvr.Resource {
			return true, nil
		}
	}
	return false, nil
}

// PoolStatus is what decides whether a MachineConfigPool finished rolling out.
type PoolStatus struct {
	Name                string
	Updated             bool
	Updating            bool
	Degraded            bool
	MachineCount        int64
	UpdatedMachineCount int64
	ReadyMachineCount   int64
}

// PoolStatusOf reads a MachineConfigPool object.
func PoolStatusOf(u *unstructured.Unstructured) PoolStatus {
	s := PoolStatus{Name: u.GetName()}
	s.MachineCount, _, _ = unstructured.NestedInt64(u.Object, "status", "machineCount")
	s.UpdatedMachineCount, _, _ = unstructured.NestedInt64(u.Object, "status", "updatedMachineCount")
	s.ReadyMachineCount, _, _ = unstructured.NestedInt64(u.Object, "status", "readyMachineCount")
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok {
			continue
		}
		on := m["status"] == "True"
		switch m["type"] {
		case "Updated":
			s.Updated = on
		case "Updating":
			s.Updating = on
		case "Degraded":
			s.Degraded = on
		}
	}
	return s
}

// Done reports whether the pool has rolled out everywhere, and an error
// when it is degraded (waiting longer would not help).
func (s PoolStatus) Done() (bool, error) {
	if s.Degraded {
		return false, fmt.Errorf("MachineConfigPool %s is Degraded", s.Name)
	}
	return s.Updated && !s.Updating && s.UpdatedMachineCount == s.MachineCount && s.ReadyMachineCount == s.MachineCount, nil
}

// WaitPoolsUpdated waits until every MachineConfigPool has rolled out
// (the MCO reboots nodes one by one: the default is 30 minutes).
func WaitPoolsUpdated(ctx context.Context, dc dynamic.Interface, timeout, poll time.Duration) error {
	deadline := time.Now().Add(timeout)
	// The MCO needs a moment to notice a new MachineConfig; a pool that is
	// still Updated right after the change has not started yet.
	time.Sleep(poll)
	var last []string
	for time.Now().Before(deadline) {
		list, err := dc.Resource(MachineConfigPoolGVR).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		last = last[:0]
		all := true
		for i := range list.Items {
			s := PoolStatusOf(&list.Items[i])
			done, err := s.Done()
			if err != nil {
				return err
			}
			if !done {
				all = false
				last = append(last, fmt.Sprintf("%s %d/%d updated", s.Name, s.UpdatedMachineCount, s.MachineCount))
			}
		}
		if all {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(poll):
		}
	}
	return fmt.Errorf("MachineConfigPools not Updated within %s: %s", timeout, strings.Join(last, ", "))
}

// ApplyYAML creates or updates an object from YAML with server-side apply.
func ApplyYAML(ctx context.Context, dc dynamic.Interface, gvr schema.GroupVersionResource, data []byte) (string, error) {
	var obj map[string]any
	if err := yaml.Unmarshal(data, &obj); err != nil {
		return "", err
	}
	u := &unstructured.Unstructured{Object: obj}
	if _, err := dc.Resource(gvr).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "nodeconform", Force: true}); err != nil {
		return "", fmt.Errorf("apply %s %s: %w", gvr.Resource, u.GetName(), err)
	}
	return u.GetName(), nil
}

// DeleteIgnoringAbsent deletes a cluster-scoped object.
func DeleteIgnoringAbsent(ctx context.Context, dc dynamic.Interface, gvr schema.GroupVersionResource, name string) error {
	err := dc.Resource(gvr).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s %s: %w", gvr.Resource, name, err)
	}
	return nil
}

// LabelPool sets (value != "") or removes a label on a MachineConfigPool.
func LabelPool(ctx context.Context, dc dynamic.Interface, pool, key, value string) error {
	var patch string
	if value == "" {
		patch = fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, key)
	} else {
		patch = fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, key, value)
	}
	_, err := dc.Resource(MachineConfigPoolGVR).Patch(ctx, pool, "application/merge-patch+json", []byte(patch), metav1.PatchOptions{})
	return err
}
