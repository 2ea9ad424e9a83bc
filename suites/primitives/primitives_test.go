package primitives

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/netfilter"
	"github.com/nodeconform/nodeconform/framework/probeapi"
	"github.com/nodeconform/nodeconform/framework/procfs"
	"github.com/nodeconform/nodeconform/framework/verdict"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// isolated are the namespaces every pod gets of its own.
var isolated = []string{"pid", "net", "mnt", "uts", "ipc"}

// nodePods are the pods one node runs for the suite, all created at the
// start so that they boot together: a pod of two probe containers
// (separate pid namespaces; container "a" also stands for a plain pod),
// the same with shareProcessNamespace, and a hostPID/hostNetwork pod with
// the node's /etc as a hostPath. Three pods, not one per spec: on an
// emulated node (the QEMU/TCG VM) every sandbox counts.
type nodePods struct {
	pair, shared, host *corev1.Pod
}

// The namespaces behind a pod are the node's runtime and kubelet at work
// (a runtime config, a wrapper, an old runc can change them on one node
// pool): every property is judged on every judged node, each node its
// own verdict.
var _ = Describe("Linux primitives behind pods", Ordered, ContinueOnFailure, Label("primitives"), func() {
	var (
		e      *e2e.Env
		nodes  []string
		unread map[string]string
		pods   = map[string]*nodePods{}
		fresh  *freshService
		// freshErr is why the Service could not be made: the kube-proxy
		// spec fails with it, the others go on.
		freshErr error
	)
	BeforeAll(func(ctx SpecContext) {
		e = *env
		Expect(e.Nodes).NotTo(BeNil(), "suite needs node access")
		// privileged: the host pod; the others ask for nothing more than
		// under the default level.
		ns := e.Namespace(ctx, "primitives", "privileged")
		nodes, unread = e.NodeNames(), e.Unreachable()
		for i, n := range nodes {
			if _, bad := unread[n]; bad {
				continue
			}
			// Named by index: the uts spec compares the hostname with the
			// pod's name, which a long or dotted node name would not keep.
			p := &nodePods{
				pair:   twoContainers(ns, fmt.Sprintf("pair-%d", i), e.ProbeImage, false),
				shared: twoContainers(ns, fmt.Sprintf("shared-%d", i), e.ProbeImage, true),
				host:   hostPod(ns, fmt.Sprintf("host-%d", i), e.ProbeImage),
			}
			for _, pod := range []*corev1.Pod{p.pair, p.shared, p.host} {
				workload.PinToNode(pod, n)
				Expect(e.Klient.Resources().Create(ctx, pod)).To(Succeed(), "create pod %s/%s on %s", pod.Namespace, pod.Name, n)
			}
			pods[n] = p
		}
		// Made now, so kube-proxy programs it while the pods boot.
		fresh, freshErr = createFreshService(ctx, e, ns)
	})

	// each judges property on every node with its pods.
	each := func(ctx context.Context, property string, check func(ctx context.Context, g Gomega, node string, p *nodePods) any) {
		GinkgoHelper()
		verdict.Expect(property, verdict.Each(ctx, verdict.Input{Nodes: nodes, Unreachable: unread, Parallel: e.Config.Nodes.MaxParallel},
			func(ctx context.Context, g Gomega, n string) any { return check(ctx, g, n, pods[n]) }))
	}
	// ready waits for a pod of the node (Ready at once after the first
	// spec that needed it).
	ready := func(ctx context.Context, g Gomega, pod *corev1.Pod) *corev1.Pod {
		got, err := workload.WaitReady(ctx, e.Clientset, pod.DeepCopy(), e.Config.Timeouts.PodReady.Duration)
		g.Expect(err).NotTo(HaveOccurred())
		return got
	}

	It("gives a pod its own pid, net, mnt, uts and ipc namespaces", func(ctx SpecContext) {
		each(ctx, "a pod's own namespaces", func(ctx context.Context, g Gomega, n string, p *nodePods) any {
			pod := ready(ctx, g, p.pair)
			self := processIn(ctx, g, e, pod, "a", "self")
			hostNS := nodeInit(ctx, g, e, n)
			for _, k := range isolated {
				g.Expect(self.NS[k]).NotTo(Equal(hostNS.NS[k]), "%s namespace of pod %s equals the node's", k, pod.Name)
			}
			return map[string]any{"pod": self.NS, "node": hostNS.NS}
		})
	})

	It("shares net, uts and ipc, but not pid and mnt, between the containers of a pod", func(ctx SpecContext) {
		each(ctx, "namespaces shared between a pod's containers", func(ctx context.Context, g Gomega, n string, p *nodePods) any {
			pod := ready(ctx, g, p.pair)
			a, b := processIn(ctx, g, e, pod, "a", "self"), processIn(ctx, g, e, pod, "b", "self")
			for _, k := range []string{"net", "uts", "ipc"} {
				g.Expect(a.NS[k]).To(Equal(b.NS[k]), "%s namespace of containers a and b", k)
			}
			for _, k := range []string{"pid", "mnt"} {
				g.Expect(a.NS[k]).NotTo(Equal(b.NS[k]), "%s namespace of containers a and b", k)
			}
			return map[string]any{"a": a.NS, "b": b.NS}
		})
	})

	It("shares the pid namespace with shareProcessNamespace, with the sandbox's pause as PID 1", func(ctx SpecContext) {
		each(ctx, "shareProcessNamespace", func(ctx context.Context, g Gomega, n string, p *nodePods) any {
			pod := ready(ctx, g, p.shared)
			a, b := processIn(ctx, g, e, pod, "a", "self"), processIn(ctx, g, e, pod, "b", "self")
			pid1 := processIn(ctx, g, e, pod, "a", "1")
			g.Expect(a.NS["pid"]).To(Equal(b.NS["pid"]), "pid namespace of containers a and b")
			g.Expect(pid1.Comm).To(Equal("pause"), "PID 1 of a shared pid namespace")
			return map[string]any{"a": a.NS, "b": b.NS, "pid1": pid1}
		})
	})

	It("runs hostPID and hostNetwork pods in the node's pid and net namespaces", func(ctx SpecContext) {
		each(ctx, "hostPID and hostNetwork", func(ctx context.Context, g Gomega, n string, p *nodePods) any {
			pod := ready(ctx, g, p.host)
			self := processIn(ctx, g, e, pod, "", "self")
			hostNS := nodeInit(ctx, g, e, n)
			g.Expect(self.NS["pid"]).To(Equal(hostNS.NS["pid"]), "pid namespace")
			g.Expect(self.NS["net"]).To(Equal(hostNS.NS["net"]), "net namespace")
			g.Expect(self.NS["mnt"]).NotTo(Equal(hostNS.NS["mnt"]), "hostPID/hostNetwork must not share the mount namespace")
			return map[string]any{"pod": self.NS, "node": hostNS.NS}
		})
	})

	It("runs the container's entrypoint as PID 1 of its pid namespace", func(ctx SpecContext) {
		each(ctx, "entrypoint as PID 1", func(ctx context.Context, g Gomega, n string, p *nodePods) any {
			pid1 := processIn(ctx, g, e, ready(ctx, g, p.pair), "a", "1")
			g.Expect(pid1.Cmdline).To(Equal([]string{"/nodeconform-probe", "sleep"}))
			return pid1
		})
	})

	It("gives the pod's hostname to its uts namespace", func(ctx SpecContext) {
		each(ctx, "the pod's hostname", func(ctx context.Context, g Gomega, n string, p *nodePods) any {
			pod := ready(ctx, g, p.pair)
			var r probeapi.Read
			g.Expect(workload.ExecJSONIn(ctx, e.Klient, pod.Namespace, pod.Name, "a", []string{"read", "/proc/sys/kernel/hostname"}, &r)).To(Succeed())
			g.Expect(strings.TrimSpace(r.Content)).To(Equal(pod.Name))
			return strings.TrimSpace(r.Content)
		})
	})

	It("bind-mounts /etc/resolv.conf from the runtime's sandbox directory", func(ctx SpecContext) {
		each(ctx, "resolv.conf from the sandbox", func(ctx context.Context, g Gomega, n string, p *nodePods) any {
			pod := ready(ctx, g, p.pair)
			var r probeapi.Mounts
			g.Expect(workload.ExecJSONIn(ctx, e.Klient, pod.Namespace, pod.Name, "a", []string{"mounts", "--pid", "self"}, &r)).To(Succeed())
			src, ok := procfs.RuntimeBindMount(r.Mounts, "/etc/resolv.conf")
			g.Expect(ok).To(BeTrue(), "/etc/resolv.conf source %q is not a runtime sandbox file", src)
			return src
		})
	})

	It("exposes node files through hostPath", func(ctx SpecContext) {
		each(ctx, "hostPath", func(ctx context.Context, g Gomega, n string, p *nodePods) any {
			pod := ready(ctx, g, p.host)
			var r probeapi.Read
			g.Expect(workload.ExecJSON(ctx, e.Klient, pod.Namespace, pod.Name, []string{"read", "/host/etc/machine-id"}, &r)).To(Succeed())
			onNode, err := e.Nodes.MustHost(ctx, n, "cat", "/etc/machine-id")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(r.Content).To(Equal(onNode), "/etc/machine-id through hostPath")
			return map[string]string{"throughHostPath": r.Content, "onNode": onNode}
		})
	})

	// A rule for default/kubernetes only shows that kube-proxy ran once:
	// iptables and nftables keep it after kube-proxy is gone from the
	// node. The Service the suite created shows that it programs Services
	// now.
	It("has kube-proxy's rules on every node, and the rules of a Service created now", func(ctx SpecContext) {
		mode, why := kubeProxyMode(ctx, e)
		if mode != "iptables" && mode != "nftables" {
			Skip(why)
		}
		if freshErr != nil {
			Fail(fmt.Sprintf("no Service for kube-proxy to program: %v", freshErr))
		}
		svc, err := e.Clientset.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		port := fmt.Sprint(svc.Spec.Ports[0].Port)
		window := e.Config.Timeouts.KubeProxySync.Duration
		each(ctx, "kube-proxy's rules ("+mode+" mode)", func(ctx context.Context, g Gomega, n string, _ *nodePods) any {
			var rules proxyRules
			for {
				rules = readProxyRules(ctx, g, e, n, mode, svc.Spec.ClusterIP, port, fresh)
				if rules.fresh != "" || time.Since(fresh.created) > window || ctx.Err() != nil {
					break
				}
				time.Sleep(time.Second)
			}
			g.Expect(rules.missing).To(BeEmpty(), "kube-proxy chains (%s mode, %s)", mode, why)
			g.Expect(rules.kubernetes).NotTo(BeEmpty(), "no %s rule for default/kubernetes %s:%s", mode, svc.Spec.ClusterIP, port)
			if rules.fresh == "" {
				g.Expect(rules.fresh).NotTo(BeEmpty(), "no %s rule for Service %s (%s:%s) %s after it was created: kube-proxy does not program new Services on this node (%s)",
					mode, fresh.name, fresh.ip, fresh.port, time.Since(fresh.created).Round(time.Second), kubeProxyPods(ctx, e, n))
			}
			return map[string]any{"mode": mode, "modeFrom": why, "missingChains": rules.missing, "kubernetesServiceRule": rules.kubernetes,
				"newService": fresh.name, "newServiceRule": rules.fresh, "newServiceAgeAtRead": time.Since(fresh.created).Round(100 * time.Millisecond).String()}
		})
	})
})

// processIn is one process of a pod's container (PID pid, or "self": the
// probe itself), with its namespaces.
func processIn(ctx context.Context, g Gomega, e *e2e.Env, pod *corev1.Pod, container, pid string) procfs.Process {
	var r probeapi.NS
	g.Expect(workload.ExecJSONIn(ctx, e.Klient, pod.Namespace, pod.Name, container, []string{"ns", "--pid", pid}, &r)).To(Succeed())
	g.Expect(r.Processes).To(HaveLen(1), "process %s in pod %s", pid, pod.Name)
	return r.Processes[0]
}

// nodeInit returns PID 1 of the node (systemd, or the node's init).
func nodeInit(ctx context.Context, g Gomega, e *e2e.Env, node string) procfs.Process {
	procs, err := e.Nodes.Processes(ctx, node, []string{"1"}, nil)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(procs).To(HaveLen(1), "PID 1 of %s", node)
	return procs[0]
}

func twoContainers(ns, name, image string, shareProcessNamespace bool) *corev1.Pod {
	pod := workload.ProbePod(workload.ProbePodInput{Namespace: ns, Name: name, Image: image})
	a := pod.Spec.Containers[0]
	a.Name = "a"
	b := a
	b.Name = "b"
	pod.Spec.Containers = []corev1.Container{a, b}
	pod.Spec.ShareProcessNamespace = &shareProcessNamespace
	return pod
}

// hostPod runs in the node's pid and net namespaces, with the node's /etc
// read-only at /host/etc.
func hostPod(ns, name, image string) *corev1.Pod {
	pod := workload.ProbePod(workload.ProbePodInput{Namespace: ns, Name: name, Image: image})
	pod.Spec.HostPID, pod.Spec.HostNetwork = true, true
	pod.Spec.Volumes = []corev1.Volume{{Name: "etc", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/etc"}}}}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "etc", MountPath: "/host/etc", ReadOnly: true}}
	return pod
}

// freshService is a Service the suite created, to see kube-proxy program it.
type freshService struct {
	name, ip, port string
	created        time.Time
}

// createFreshService makes a Service without selector and its
// EndpointSlice by hand (the API server's own endpoint), so that it has
// rules in nat KUBE-SERVICES (a Service without endpoints has none) and
// needs no pod.
func createFreshService(ctx context.Context, e *e2e.Env, ns string) (*freshService, error) {
	cs := e.Clientset
	api, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kubernetes"})
	if err != nil {
		return nil, fmt.Errorf("endpoints of default/kubernetes: %w", err)
	}
	var ep *discoveryv1.Endpoint
	var epPort *discoveryv1.EndpointPort
	var family discoveryv1.AddressType
	for i := range api.Items {
		s := &api.Items[i]
		if len(s.Endpoints) > 0 && len(s.Ports) > 0 {
			ep, epPort, family = &s.Endpoints[0], &s.Ports[0], s.AddressType
			break
		}
	}
	if ep == nil {
		return nil, fmt.Errorf("no EndpointSlice with an endpoint for default/kubernetes")
	}
	svc, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "fresh"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "api", Protocol: corev1.ProtocolTCP, Port: 8443, TargetPort: intstr.FromInt32(*epPort.Port)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create Service %s/fresh: %w", ns, err)
	}
	ready := true
	_, err = cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "fresh", Labels: map[string]string{discoveryv1.LabelServiceName: "fresh"}},
		AddressType: family,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: ep.Addresses, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("api"), Protocol: ptr.To(corev1.ProtocolTCP), Port: epPort.Port}},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create EndpointSlice %s/fresh: %w", ns, err)
	}
	return &freshService{name: ns + "/fresh", ip: svc.Spec.ClusterIP, port: "8443", created: time.Now()}, nil
}

// kubeProxyPods says which kube-proxy pods run on node, and how they are.
func kubeProxyPods(ctx context.Context, e *e2e.Env, node string) string {
	list, err := e.Clientset.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return "kube-proxy pods unknown: " + err.Error()
	}
	var out []string
	for _, p := range list.Items {
		if !strings.HasPrefix(p.Name, "kube-proxy") {
			continue
		}
		state := string(p.Status.Phase)
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				state += ", Ready=" + string(c.Status)
			}
		}
		out = append(out, p.Name+" "+state)
	}
	if len(out) == 0 {
		return "no kube-proxy pod in kube-system on this node"
	}
	return "kube-proxy pods here: " + strings.Join(out, "; ")
}

// proxyRules is what one node shows of kube-proxy: the chains it lacks,
// and the rules (iptables) or map elements (nftables) of the API server's
// Service and of the suite's fresh one ("" when absent).
type proxyRules struct {
	missing           []string
	kubernetes, fresh string
}

// readProxyRules reads kube-proxy's rules on node in mode: iptables-save's
// nat table, or the kube-proxy nftables table of each address family, from
// the node's kernel.
func readProxyRules(ctx context.Context, g Gomega, e *e2e.Env, node, mode, apiIP, apiPort string, fresh *freshService) proxyRules {
	if mode == "iptables" {
		save, err := e.Nodes.MustHost(ctx, node, "iptables-save", "-t", "nat")
		g.Expect(err).NotTo(HaveOccurred())
		nat := netfilter.Parse(save)["nat"]
		return proxyRules{missing: netfilter.MissingChains(nat, netfilter.KubeProxyChains),
			kubernetes: netfilter.ServiceRule(nat, apiIP, apiPort), fresh: netfilter.ServiceRule(nat, fresh.ip, fresh.port)}
	}
	tables := map[string]probeapi.NFTTable{}
	table := func(ip string) probeapi.NFTTable {
		fam, err := netfilter.NFTFamily(ip)
		g.Expect(err).NotTo(HaveOccurred())
		if t, ok := tables[fam]; ok {
			return t
		}
		var t probeapi.NFTTable
		g.Expect(e.Nodes.Exec(ctx, node, []string{"nft-table", "--family", fam, "--table", netfilter.KubeProxyNFTTable, "--map", netfilter.KubeProxyServiceIPs}, &t)).To(Succeed())
		tables[fam] = t
		return t
	}
	element := func(ip, port string) string {
		el, err := netfilter.NFTServiceElement(table(ip), ip, "tcp", port)
		g.Expect(err).NotTo(HaveOccurred())
		return el
	}
	var r proxyRules
	r.kubernetes, r.fresh = element(apiIP, apiPort), element(fresh.ip, fresh.port)
	for fam, t := range tables {
		if !t.Found {
			r.missing = append(r.missing, "table "+fam+" "+netfilter.KubeProxyNFTTable+" (none on the node)")
			continue
		}
		for _, c := range netfilter.MissingNFTChains(t, netfilter.KubeProxyNFTChains) {
			r.missing = append(r.missing, fam+" "+netfilter.KubeProxyNFTTable+" "+c)
		}
	}
	return r
}

// kubeProxyMode is the mode kube-proxy runs in as the cluster declares it,
// and where that was read: kubeadm's kube-system/kube-proxy ConfigMap
// (iptables when it names none, kube-proxy's default on Linux). A
// cluster with neither that ConfigMap nor a kube-proxy DaemonSet leaves
// Services to another component (a CNI's kube-proxy replacement), which
// this suite does not judge: the mode is then "none".
func kubeProxyMode(ctx context.Context, e *e2e.Env) (mode, why string) {
	cm, err := e.Clientset.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil {
		if _, dsErr := e.Clientset.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{}); apierrors.IsNotFound(err) && apierrors.IsNotFound(dsErr) {
			return "none", "this cluster runs no kube-proxy (no kube-system/kube-proxy ConfigMap or DaemonSet): Services are another component's, not judged here"
		}
		return "iptables", fmt.Sprintf("kube-proxy's default: its ConfigMap kube-system/kube-proxy could not be read (%v)", err)
	}
	for _, line := range strings.Split(cm.Data["config.conf"], "\n") {
		if v, ok := strings.CutPrefix(line, "mode:"); ok {
			if m := strings.Trim(strings.TrimSpace(v), `"'`); m != "" {
				if m != "iptables" && m != "nftables" {
					return m, fmt.Sprintf("kube-proxy runs in %q mode (ConfigMap kube-system/kube-proxy): only its iptables and nftables modes are judged", m)
				}
				return m, "ConfigMap kube-system/kube-proxy"
			}
		}
	}
	return "iptables", "kube-proxy's default: ConfigMap kube-system/kube-proxy names no mode"
}
