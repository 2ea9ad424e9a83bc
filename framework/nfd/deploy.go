package nfd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/template"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/nodeconform/nodeconform/framework/workload"
)

// AnnotationNs is the namespace of the annotations nfd-master keeps on
// nodes (nfd.node.kubernetes.io/feature-labels lists the labels it owns).
const AnnotationNs = "nfd.node.kubernetes.io"

// MasterBatch is how long nfd-master gathers node updates before it
// labels (once a second: labels appear about 1.0-1.1 s after a rule
// changes here, README "Measured here").
const MasterBatch = time.Second

// featureLabelsAnnotation lists the labels nfd-master manages on a node,
// names in FeatureLabelNs without their namespace.
const featureLabelsAnnotation = AnnotationNs + "/feature-labels"

// DeployOptions configures Deploy.
type DeployOptions struct {
	// Config reaches the cluster.
	Config *rest.Config
	// Image is the NFD image (BuildImage), already on the nodes.
	Image string
	// SleepInterval is nfd-worker's core.sleepInterval, how often it
	// re-reads features (3 s when zero; NFD's default is 60 s).
	SleepInterval time.Duration
	// WorkerSources is appended to the worker configuration: a top-level
	// "sources:" section, e.g. custom rules.
	WorkerSources string
	// Labels go on the namespace and every cluster-scoped object created.
	Labels map[string]string
	// Timeout bounds the wait for nfd-master and every nfd-worker to be
	// ready (2 min when zero). nfd-master not ready by then is an error;
	// workers not ready are not (Deployment.WorkersReady, Workers). The
	// wait ends sooner on pods that cannot start or that their
	// controller has failed to create for workload.DefaultStuckAfter.
	Timeout time.Duration
}

// Deployment is NFD running in a namespace of its own.
type Deployment struct {
	// Namespace holds nfd-master, nfd-worker and their NodeFeatures.
	Namespace string
	// ReadyAfter is how long nfd-master and every worker took to be ready
	// (or, when WorkersReady is false, until the wait gave up on them).
	ReadyAfter time.Duration
	// WorkersReady: every nfd-worker was Ready when Deploy returned. When
	// false, Workers says which nodes' were not.
	WorkersReady bool

	cs      kubernetes.Interface
	dyn     dynamic.Interface
	mapper  *restmapper.DeferredDiscoveryRESTMapper
	labels  map[string]string
	created []objectRef // cluster-scoped objects, in creation order
	rules   []string    // NodeFeatureRules applied through ApplyRule
	// attached: the cluster's own NFD (Attach); Remove leaves it running.
	attached bool
}

type objectRef struct {
	gvr  schema.GroupVersionResource
	name string
}

// Deploy creates a namespace (Pod Security privileged: the worker mounts
// host paths), NFD's CRDs unless the cluster has them, the RBAC, nfd-master
// and the nfd-worker DaemonSet, and waits until all are ready (nfd-master
// at least: see waitReady). On error the
// returned Deployment (if any) holds what was created, for Remove.
func Deploy(ctx context.Context, o DeployOptions) (*Deployment, error) {
	if o.SleepInterval == 0 {
		o.SleepInterval = 3 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	cs, err := kubernetes.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(o.Config)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{workload.ManagedLabel: "true"}
	maps.Copy(labels, o.Labels)
	d := &Deployment{cs: cs, dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), labels: labels}

	ns, err := workload.CreateNamespace(ctx, workload.NamespaceInput{Clientset: cs, Prefix: "nfd", PodSecurity: "privileged", Labels: o.Labels})
	if err != nil {
		return nil, fmt.Errorf("create NFD namespace: %w", err)
	}
	d.Namespace = ns.Name
	start := time.Now()
	if err := d.applyCRDs(ctx); err != nil {
		return d, err
	}
	manifest, err := Render(o.Image, d.Namespace, o.SleepInterval, o.WorkerSources)
	if err != nil {
		return d, err
	}
	objs, err := decodeAll(manifest)
	if err != nil {
		return d, err
	}
	for _, obj := range objs {
		if _, err := d.create(ctx, obj); err != nil {
			return d, err
		}
	}
	if err := d.waitReady(ctx, o.Timeout); err != nil {
		return d, err
	}
	d.ReadyAfter = time.Since(start)
	return d, nil
}

// Render returns the NFD manifests (fixtures/nfd/deployment.yaml.tmpl) for
// a namespace, with nfd-worker's configuration
// (fixtures/nfd/nfd-worker.conf.tmpl) filled in.
func Render(image, namespace string, sleepInterval time.Duration, workerSources string) (string, error) {
	conf, err := execTemplate("nfd-worker.conf.tmpl", map[string]any{"SleepInterval": sleepInterval.String(), "Sources": workerSources})
	if err != nil {
		return "", err
	}
	return execTemplate("deployment.yaml.tmpl", map[string]any{"Namespace": namespace, "Image": image, "WorkerConfig": conf})
}

func execTemplate(name string, data any) (string, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(template.FuncMap{
		"indent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
			for i, l := range lines {
				if l != "" {
					lines[i] = pad + l
				}
			}
			return strings.Join(lines, "\n")
		},
	}).Parse(string(fixture(name)))
	if err != nil {
		return "", fmt.Errorf("fixture nfd/%s: %w", name, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("fixture nfd/%s: %w", name, err)
	}
	return b.String(), nil
}

// decodeAll splits a multi-document YAML manifest into objects.
func decodeAll(manifest string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// applyCRDs creates NFD's CRDs the cluster lacks and waits until they are
// established. CRDs that already exist are left as they are (and are not
// removed by Remove).
func (d *Deployment) applyCRDs(ctx context.Context) error {
	crds, err := decodeAll(string(fixture("crds.yaml")))
	if err != nil {
		return err
	}
	gvr := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, crd := range crds {
		if _, err := d.create(ctx, crd); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	for _, crd := range crds {
		err := poll(ctx, 30*time.Second, func() (bool, error) {
			got, err := d.dyn.Resource(gvr).Get(ctx, crd.GetName(), metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			for _, c := range conds {
				if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not established: %w", crd.GetName(), err)
		}
	}
	d.mapper.Reset()
	return nil
}

// create creates obj (in d.Namespace when namespaced and without one) and
// records cluster-scoped objects for Remove. created is false when the
// object already existed.
func (d *Deployment) create(ctx context.Context, obj *unstructured.Unstructured) (created bool, err error) {
	gvk := obj.GroupVersionKind()
	mapping, err := d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		d.mapper.Reset()
		mapping, err = d.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	l := obj.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	maps.Copy(l, d.labels)
	obj.SetLabels(l)
	var ri dynamic.ResourceInterface = d.dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if obj.GetNamespace() == "" {
			obj.SetNamespace(d.Namespace)
		}
		ri = d.dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
	}
	if _, err := ri.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		return false, fmt.Errorf("create %s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	if mapping.Scope.Name() != meta.RESTScopeNameNamespace {
		d.created = append(d.created, objectRef{gvr: mapping.Resource, name: obj.GetName()})
	}
	return true, nil
}

// waitReady waits for nfd-master and every nfd-worker to be Ready. Only
// nfd-master is required: when it is Ready and workers are not by the
// timeout, waitReady returns nil with WorkersReady false, and each node's
// worker is judged with that node (Workers, LabelFinding), so that one node
// that cannot run a worker does not fail the others.
func (d *Deployment) waitReady(ctx context.Context, timeout time.Duration) error {
	var last string
	masterReady := false
	var stuck, masterStuck workload.Stuck
	var checked time.Time
	// Since when the controllers have reported that they cannot create
	// the pods (an admission policy, a quota requiring limits): given
	// up on after Stuck's time, as a pod that cannot start is.
	var masterRefused, workersRefused workload.Lasting
	lastCurrent := int32(-1)
	refusedFor := func(l *workload.Lasting, why string) bool {
		if why == "" {
			l.Reset()
			return false
		}
		return l.Holds(workload.DefaultStuckAfter)
	}
	begun := time.Now()
	err := poll(ctx, timeout, func() (bool, error) {
		dep, err := d.cs.AppsV1().Deployments(d.Namespace).Get(ctx, "nfd-master", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ds, err := d.cs.AppsV1().DaemonSets(d.Namespace).Get(ctx, "nfd-worker", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		s := ds.Status
		last = fmt.Sprintf("nfd-master %d/1 ready, nfd-worker %d/%d ready", dep.Status.ReadyReplicas, s.NumberReady, s.DesiredNumberScheduled)
		masterReady = dep.Status.ReadyReplicas >= 1
		d.WorkersReady = s.DesiredNumberScheduled > 0 && s.NumberReady == s.DesiredNumberScheduled && s.UpdatedNumberScheduled == s.DesiredNumberScheduled
		if masterReady && d.WorkersReady {
			return true, nil
		}
		// An nfd-master that cannot start (no image, no sandbox) will
		// not be Ready by the timeout either: say so once it has been
		// stuck for Stuck's time, instead of at the timeout (seen: 3 min
		// on ErrImageNeverPull).
		if !masterReady && time.Since(checked) >= time.Second {
			checked = time.Now()
			pods, err := d.cs.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=nfd-master"})
			if err != nil {
				return false, err
			}
			for _, p := range pods.Items {
				if p.Spec.NodeName != "" && p.DeletionTimestamp == nil && !workload.IsReady(&p) && masterStuck.Check(ctx, d.cs, &p) {
					return false, permanent{fmt.Errorf("nfd-master pod %s cannot start on node %s", p.Name, p.Spec.NodeName)}
				}
			}
			// The Deployment's own condition: current, and nfd-master's
			// alone (not an older ReplicaSet's event).
			var why string
			if len(pods.Items) == 0 {
				var failing bool
				if why, failing = replicaFailure(dep); failing && why == "" {
					// The condition keeps its first message: a timeout
					// then, perhaps a refusal since.
					why = d.failedCreates(ctx, "ReplicaSet")
				}
			}
			if refusedFor(&masterRefused, why) {
				return false, permanent{fmt.Errorf("nfd-master's pod cannot be created: %s", why)}
			}
			return false, nil
		}
		// A worker that cannot start on its node (no sandbox, no image)
		// will not be Ready by the timeout: once every other one is, the
		// wait ends, and the label specs fail that node with why.
		if !masterReady || s.DesiredNumberScheduled == 0 || time.Since(checked) < time.Second {
			return false, nil
		}
		checked = time.Now()
		// Nodes the DaemonSet controller cannot make a worker for: the
		// label specs fail them naming the refusal (WorkersNotCreated).
		// A pod made since restarts the count: the controller's create
		// may have failed for a moment (it backs off between attempts).
		missing := 0
		if s.CurrentNumberScheduled != lastCurrent {
			lastCurrent = s.CurrentNumberScheduled
			workersRefused.Reset()
		}
		if s.UpdatedNumberScheduled != s.DesiredNumberScheduled {
			var why string
			if s.CurrentNumberScheduled < s.DesiredNumberScheduled {
				why = workload.FailedCreates(workload.Events(ctx, d.cs, d.Namespace, "nfd-worker"))
			}
			if !refusedFor(&workersRefused, why) {
				return false, nil
			}
			missing = int(s.DesiredNumberScheduled - s.CurrentNumberScheduled)
		} else {
			workersRefused.Reset()
		}
		pods, err := d.workerPods(ctx)
		if err != nil {
			return false, err
		}
		ready, givenUp := 0, 0
		for _, p := range pods {
			switch {
			case workload.TargetNode(&p) == "" || p.DeletionTimestamp != nil:
			case workload.IsReady(&p):
				ready++
			case stuck.Check(ctx, d.cs, &p):
				givenUp++
			}
		}
		last += fmt.Sprintf(", %d given up on, %d not created", givenUp, missing)
		return givenUp+missing > 0 && ready+givenUp+missing >= int(s.DesiredNumberScheduled), nil
	})
	if err != nil && masterReady && ctx.Err() == nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("NFD in %s not ready after %s of %s (%s): %w; pods: %s", d.Namespace, time.Since(begun).Round(100*time.Millisecond), timeout, last, err, d.describePods(ctx))
	}
	return nil
}

// replicaFailure is the message of a Deployment's ReplicaFailure
// condition (its ReplicaSet cannot create pods: an admission policy, a
// quota) and whether it has one; "" for a timeout, which may pass.
func replicaFailure(dep *appsv1.Deployment) (string, bool) {
	for _, c := range dep.Status.Conditions {
		if c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue {
			if workload.Slow(c.Message) {
				return "", true
			}
			return c.Reason + ": " + c.Message, true
		}
	}
	return "", false
}

// failedCreates is the FailedCreate warnings of the namespace's
// controllers of kind (nfd-master's ReplicaSet's name is not known
// ahead; the namespace is the deployment's own), or "".
func (d *Deployment) failedCreates(ctx context.Context, kind string) string {
	list, err := d.cs.CoreV1().Events(d.Namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.kind=" + kind})
	if err != nil {
		return ""
	}
	return workload.FailedCreates(list.Items)
}

// WorkersNotCreated is why the nfd-worker DaemonSet's controller could not
// create a worker (its FailedCreate warnings) while some node it targets
// has none, or "": what a node without a worker pod fails with besides.
func (d *Deployment) WorkersNotCreated(ctx context.Context) string {
	if d == nil || d.attached || d.Namespace == "" {
		return ""
	}
	ds, err := d.cs.AppsV1().DaemonSets(d.Namespace).Get(ctx, "nfd-worker", metav1.GetOptions{})
	if err != nil || ds.Status.CurrentNumberScheduled >= ds.Status.DesiredNumberScheduled {
		return ""
	}
	return workload.FailedCreates(workload.Events(ctx, d.cs, d.Namespace, "nfd-worker"))
}

func (d *Deployment) describePods(ctx context.Context) string {
	pods, err := d.cs.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, p := range pods.Items {
		parts = append(parts, p.Name+": "+workload.Describe(ctx, d.cs, d.Namespace, p.Name))
	}
	return strings.Join(parts, "; ")
}

var nodeFeatureRules = schema.GroupVersionResource{Group: "nfd.k8s-sigs.io", Version: "v1alpha1", Resource: "nodefeaturerules"}

// NodeFeatures is the resource nfd-worker publishes a node's features in.
var NodeFeatures = schema.GroupVersionResource{Group: "nfd.k8s-sigs.io", Version: "v1alpha1", Resource: "nodefeatures"}

// ApplyRule creates the NodeFeatureRule of a manifest (e.g. a fixture) and
// returns its name; Remove deletes it.
func (d *Deployment) ApplyRule(ctx context.Context, manifest []byte) (string, error) {
	objs, err := decodeAll(string(manifest))
	if err != nil {
		return "", err
	}
	if len(objs) != 1 || objs[0].GetKind() != "NodeFeatureRule" {
		return "", fmt.Errorf("want one NodeFeatureRule, got %d objects", len(objs))
	}
	obj := objs[0]
	l := obj.GetLabels()
	if l == nil {
		l = map[string]string{}
	}
	maps.Copy(l, d.labels)
	obj.SetLabels(l)
	if _, err := d.dyn.Resource(nodeFeatureRules).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("create NodeFeatureRule %s: %w", obj.GetName(), err)
	}
	d.rules = append(d.rules, obj.GetName())
	return obj.GetName(), nil
}

// DeleteRule deletes a NodeFeatureRule; nfd-master then removes the labels
// only it produced.
func (d *Deployment) DeleteRule(ctx context.Context, name string) error {
	err := d.dyn.Resource(nodeFeatureRules).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	d.rules = slices.DeleteFunc(d.rules, func(n string) bool { return n == name })
	return nil
}

// NodeCPUID returns the cpu.cpuid flags nfd-worker published for a node
// (its NodeFeature object), sorted.
func (d *Deployment) NodeCPUID(ctx context.Context, node string) ([]string, error) {
	nf, err := d.dyn.Resource(NodeFeatures).Namespace(d.Namespace).Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	elems, _, err := unstructured.NestedMap(nf.Object, "spec", "features", "flags", FeatureCPUID, "elements")
	if err != nil {
		return nil, err
	}
	return slices.Sorted(maps.Keys(elems)), nil
}

// AddNodeFeature publishes extra cpu.cpuid flags and kernel.loadedmodule
// names for a node in a NodeFeature object of its own, which nfd-master
// merges with what nfd-worker found (flags are a union). It lets a rule's
// positive path run on nodes that lack the hardware. The object lives in
// d.Namespace and goes with it; its name is returned.
func (d *Deployment) AddNodeFeature(ctx context.Context, node string, cpuid, modules []string) (string, error) {
	elements := func(names []string) map[string]any {
		m := map[string]any{}
		for _, n := range names {
			m[n] = map[string]any{}
		}
		return map[string]any{"elements": m}
	}
	flags := map[string]any{}
	if len(cpuid) > 0 {
		flags[FeatureCPUID] = elements(cpuid)
	}
	if len(modules) > 0 {
		flags[FeatureLoadedModule] = elements(modules)
	}
	labels := map[string]any{AnnotationNs + "/node-name": node}
	for k, v := range d.labels {
		labels[k] = v
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "nfd.k8s-sigs.io/v1alpha1",
		"kind":       "NodeFeature",
		"metadata":   map[string]any{"generateName": "nodeconform-extra-", "namespace": d.Namespace, "labels": labels},
		"spec":       map[string]any{"features": map[string]any{"flags": flags}},
	}}
	got, err := d.dyn.Resource(NodeFeatures).Namespace(d.Namespace).Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create NodeFeature for %s: %w", node, err)
	}
	return got.GetName(), nil
}

// DeleteNodeFeature deletes a NodeFeature made by AddNodeFeature.
func (d *Deployment) DeleteNodeFeature(ctx context.Context, name string) error {
	err := d.dyn.Resource(NodeFeatures).Namespace(d.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// LabeledNodes returns the names of the nodes that carry label=value, like
// `oc get nodes --selector=label=value`.
func LabeledNodes(ctx context.Context, cs kubernetes.Interface, label, value string) ([]string, error) {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: label + "=" + value})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nodes.Items {
		out = append(out, n.Name)
	}
	slices.Sort(out)
	return out, nil
}

// Remove deletes what Deploy and ApplyRule created: the rules, the
// namespace (waiting until its pods are gone, so nfd-master no longer
// writes; not until the namespace is gone, which takes the namespace
// controller at least 5 s: the suite labels it with its run, DeployOptions.
// Labels, and the run's end waits for it with the run's other namespaces),
// the cluster roles and the CRDs it created. Then it removes from every node
// the labels nfd-master listed in its feature-labels annotation and every
// nfd.node.kubernetes.io annotation, as `nfd-master -prune` does. A nil
// Deployment (Deploy failed early) has nothing to remove.
func (d *Deployment) Remove(ctx context.Context, timeout time.Duration) error {
	if d == nil {
		return nil
	}
	var errs []error
	for _, r := range slices.Clone(d.rules) {
		errs = append(errs, d.DeleteRule(ctx, r))
	}
	if d.attached {
		return errors.Join(errs...)
	}
	if d.Namespace != "" {
		errs = append(errs, workload.StopNamespace(ctx, d.cs, d.Namespace, timeout))
	}
	for i := len(d.created) - 1; i >= 0; i-- {
		ref := d.created[i]
		err := d.dyn.Resource(ref.gvr).Delete(ctx, ref.name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete %s %s: %w", ref.gvr.Resource, ref.name, err))
		}
	}
	d.created = nil
	errs = append(errs, PruneNodes(ctx, d.cs))
	return errors.Join(errs...)
}

// PruneNodes removes NFD's labels and annotations from every node: the
// labels named in nfd.node.kubernetes.io/feature-labels and all
// nfd.node.kubernetes.io/ annotations. Run it only when no nfd-master runs.
func PruneNodes(ctx context.Context, cs kubernetes.Interface) error {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range nodes.Items {
		labels := map[string]any{}
		for _, l := range nfdLabels(&n) {
			labels[l] = nil
		}
		annotations := map[string]any{}
		for k := range n.Annotations {
			if strings.HasPrefix(k, AnnotationNs+"/") {
				annotations[k] = nil
			}
		}
		if len(labels) == 0 && len(annotations) == 0 {
			continue
		}
		patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels, "annotations": annotations}})
		if err != nil {
			return err
		}
		if _, err := cs.CoreV1().Nodes().Patch(ctx, n.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("prune node %s: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

// poll calls f every 200 ms until it returns true, an error, or timeout.
// permanent is an error poll does not retry: waiting longer cannot help.
type permanent struct{ error }

func poll(ctx context.Context, timeout time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := f()
		if ok {
			return nil
		}
		var p permanent
		if errors.As(err, &p) {
			return p.error
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			return fmt.Errorf("timed out after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
