package primitives

import (
	"context"
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/evidence"
	"github.com/nodeconform/nodeconform/framework/netfilter"
	"github.com/nodeconform/nodeconform/framework/probeapi"
	"github.com/nodeconform/nodeconform/framework/procfs"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// isolated are the namespaces every pod gets of its own.
var isolated = []string{"pid", "net", "mnt", "uts", "ipc"}

var _ = Describe("Linux primitives behind pods", Label("primitives"), func() {
	var e *e2e.Env
	BeforeEach(func() {
		e = *env
		Expect(e.Nodes).NotTo(BeNil(), "suite needs node access")
	})

	It("gives a pod its own pid, net, mnt, uts and ipc namespaces", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "primitives", "")
		pod := run(ctx, e, workload.ProbePod(workload.ProbePodInput{Namespace: ns, Name: "isolated", Image: e.ProbeImage}))
		self := selfNS(ctx, e, ns, pod.Name, "")
		hostNS := nodeInit(ctx, e, pod.Spec.NodeName)
		evidence.Record("namespaces", map[string]any{"pod": self.NS, "node": hostNS.NS, "nodeName": pod.Spec.NodeName})
		for _, k := range isolated {
			Expect(self.NS[k]).NotTo(Equal(hostNS.NS[k]), "%s namespace of the pod equals the node's", k)
		}
	})

	It("shares net, uts and ipc, but not pid and mnt, between the containers of a pod", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "primitives", "")
		pod := twoContainers(ns, e.ProbeImage, false)
		run(ctx, e, pod)
		a, b := selfNS(ctx, e, ns, pod.Name, "a"), selfNS(ctx, e, ns, pod.Name, "b")
		evidence.Record("namespaces", map[string]any{"a": a.NS, "b": b.NS})
		for _, k := range []string{"net", "uts", "ipc"} {
			Expect(a.NS[k]).To(Equal(b.NS[k]), "%s namespace of containers a and b", k)
		}
		for _, k := range []string{"pid", "mnt"} {
			Expect(a.NS[k]).NotTo(Equal(b.NS[k]), "%s namespace of containers a and b", k)
		}
	})

	It("shares the pid namespace with shareProcessNamespace, with the sandbox's pause as PID 1", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "primitives", "")
		pod := twoContainers(ns, e.ProbeImage, true)
		run(ctx, e, pod)
		a, b := selfNS(ctx, e, ns, pod.Name, "a"), selfNS(ctx, e, ns, pod.Name, "b")
		pid1 := processIn(ctx, e, ns, pod.Name, "a", "1")
		evidence.Record("namespaces", map[string]any{"a": a.NS, "b": b.NS, "pid1": pid1})
		Expect(a.NS["pid"]).To(Equal(b.NS["pid"]))
		Expect(pid1.Comm).To(Equal("pause"), "PID 1 of a shared pid namespace")
	})

	It("runs hostPID and hostNetwork pods in the node's pid and net namespaces", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "primitives", "privileged")
		pod := workload.ProbePod(workload.ProbePodInput{Namespace: ns, Name: "host", Image: e.ProbeImage})
		pod.Spec.HostPID, pod.Spec.HostNetwork = true, true
		run(ctx, e, pod)
		self := selfNS(ctx, e, ns, pod.Name, "")
		hostNS := nodeInit(ctx, e, pod.Spec.NodeName)
		evidence.Record("namespaces", map[string]any{"pod": self.NS, "node": hostNS.NS})
		Expect(self.NS["pid"]).To(Equal(hostNS.NS["pid"]))
		Expect(self.NS["net"]).To(Equal(hostNS.NS["net"]))
		Expect(self.NS["mnt"]).NotTo(Equal(hostNS.NS["mnt"]), "hostPID/hostNetwork must not share the mount namespace")
	})

	It("runs the container's entrypoint as PID 1 of its pid namespace", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "primitives", "")
		pod := run(ctx, e, workload.ProbePod(workload.ProbePodInput{Namespace: ns, Name: "pid1", Image: e.ProbeImage}))
		p := processIn(ctx, e, ns, pod.Name, "", "1")
		evidence.Record("pid1", p)
		Expect(p.Cmdline).To(Equal([]string{"/nodeconform-probe", "sleep"}))
	})

	It("gives the pod's hostname to its uts namespace", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "primitives", "")
		pod := run(ctx, e, workload.ProbePod(workload.ProbePodInput{Namespace: ns, Name: "uts", Image: e.ProbeImage}))
		var r probeapi.Read
		Expect(workload.ExecJSON(ctx, e.Klient, ns, pod.Name, []string{"read", "/proc/sys/kernel/hostname"}, &r)).To(Succeed())
		evidence.Record("hostname", r.Content)
		Expect(strings.TrimSpace(r.Content)).To(Equal(pod.Name))
	})

	It("bind-mounts /etc/resolv.conf from the runtime's sandbox directory", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "primitives", "")
		pod := run(ctx, e, workload.ProbePod(workload.ProbePodInput{Namespace: ns, Name: "resolv", Image: e.ProbeImage}))
		var r probeapi.Mounts
		Expect(workload.ExecJSON(ctx, e.Klient, ns, pod.Name, []string{"mounts", "--pid", "self"}, &r)).To(Succeed())
		src, ok := procfs.RuntimeBindMount(r.Mounts, "/etc/resolv.conf")
		evidence.Record("resolvConfSource", src)
		Expect(ok).To(BeTrue(), "/etc/resolv.conf source %q is not a runtime sandbox file", src)
	})

	It("exposes node files through hostPath", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "primitives", "")
		pod := workload.ProbePod(workload.ProbePodInput{Namespace: ns, Name: "hostpath", Image: e.ProbeImage})
		pod.Spec.Volumes = []corev1.Volume{{Name: "etc", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/etc"}}}}
		pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "etc", MountPath: "/host/etc", ReadOnly: true}}
		run(ctx, e, pod)
		var r probeapi.Read
		Expect(workload.ExecJSON(ctx, e.Klient, ns, pod.Name, []string{"read", "/host/etc/machine-id"}, &r)).To(Succeed())
		onNode, err := e.Nodes.MustHost(ctx, pod.Spec.NodeName, "cat", "/etc/machine-id")
		Expect(err).NotTo(HaveOccurred())
		evidence.Record("machineID", map[string]string{"throughHostPath": r.Content, "onNode": onNode})
		Expect(r.Content).To(Equal(onNode))
	})

	It("has kube-proxy's iptables chains and Service rules on every node", func(ctx SpecContext) {
		mode := kubeProxyMode(ctx, e)
		if mode != "" && mode != "iptables" {
			Skip(fmt.Sprintf("kube-proxy runs in %q mode: the iptables chains are not expected", mode))
		}
		svc, err := e.Clientset.CoreV1().Services("default").Get(ctx, "kubernetes", metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		port := fmt.Sprint(svc.Spec.Ports[0].Port)
		for _, node := range e.Nodes.Nodes() {
			save, err := e.Nodes.MustHost(ctx, node, "iptables-save", "-t", "nat")
			Expect(err).NotTo(HaveOccurred())
			nat := netfilter.Parse(save)["nat"]
			rule := netfilter.ServiceRule(nat, svc.Spec.ClusterIP, port)
			evidence.Record("kubeProxy/"+node, map[string]any{"missingChains": netfilter.MissingChains(nat, netfilter.KubeProxyChains), "kubernetesServiceRule": rule})
			Expect(netfilter.MissingChains(nat, netfilter.KubeProxyChains)).To(BeEmpty(), "kube-proxy chains on %s", node)
			Expect(rule).NotTo(BeEmpty(), "no KUBE-SERVICES rule for default/kubernetes %s:%s on %s", svc.Spec.ClusterIP, port, node)
		}
	})
})

func run(ctx context.Context, e *e2e.Env, pod *corev1.Pod) *corev1.Pod {
	got, err := workload.CreateReady(ctx, e.Klient, e.Clientset, pod, e.Config.Timeouts.PodReady.Duration)
	Expect(err).NotTo(HaveOccurred())
	return got
}

func selfNS(ctx context.Context, e *e2e.Env, ns, pod, container string) procfs.Process {
	return processIn(ctx, e, ns, pod, container, "self")
}

func processIn(ctx context.Context, e *e2e.Env, ns, pod, container, pid string) procfs.Process {
	var r probeapi.NS
	Expect(workload.ExecJSONIn(ctx, e.Klient, ns, pod, container, []string{"ns", "--pid", pid}, &r)).To(Succeed())
	Expect(r.Processes).To(HaveLen(1))
	return r.Processes[0]
}

// nodeInit returns PID 1 of the node (systemd, or the node's init).
func nodeInit(ctx context.Context, e *e2e.Env, node string) procfs.Process {
	procs, err := e.Nodes.Processes(ctx, node, []string{"1"}, nil)
	Expect(err).NotTo(HaveOccurred())
	Expect(procs).To(HaveLen(1))
	return procs[0]
}

func twoContainers(ns, image string, shareProcessNamespace bool) *corev1.Pod {
	pod := workload.ProbePod(workload.ProbePodInput{Namespace: ns, Name: "pair", Image: image})
	a := pod.Spec.Containers[0]
	a.Name = "a"
	b := a
	b.Name = "b"
	pod.Spec.Containers = []corev1.Container{a, b}
	pod.Spec.ShareProcessNamespace = &shareProcessNamespace
	return pod
}

// kubeProxyMode reads kube-proxy's configured mode from its ConfigMap
// (kubeadm clusters); "" when unknown or the default.
func kubeProxyMode(ctx context.Context, e *e2e.Env) string {
	cm, err := e.Clientset.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(cm.Data["config.conf"], "\n") {
		if v, ok := strings.CutPrefix(line, "mode:"); ok {
			return strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	return ""
}
