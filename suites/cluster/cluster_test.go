package cluster

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/evidence"
	"github.com/nodeconform/nodeconform/framework/nodeaccess"
	"github.com/nodeconform/nodeconform/framework/probeapi"
	"github.com/nodeconform/nodeconform/framework/verdict"
	"github.com/nodeconform/nodeconform/framework/workload"
)

const serverPort = 8080

var _ = Describe("Cluster soundness", Label("cluster"), func() {
	It("has every node Ready", func(ctx SpecContext) {
		e := *env
		nodes, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		type nodeEvidence struct {
			Name, Kubelet, Runtime, Ready string
		}
		var seen []nodeEvidence
		for _, n := range nodes.Items {
			ready := "Unknown"
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady {
					ready = string(c.Status)
				}
			}
			seen = append(seen, nodeEvidence{n.Name, n.Status.NodeInfo.KubeletVersion, n.Status.NodeInfo.ContainerRuntimeVersion, ready})
		}
		evidence.Record("nodes", seen)
		Expect(len(nodes.Items)).To(BeNumerically(">=", e.Config.Cluster.MinNodes), "node count of %s", e)
		Expect(cluster.NotReady(nodes.Items)).To(BeEmpty(), "nodes not Ready")
	})

	// After an upgrade, a node left on the old kubelet or runtime is
	// what this catches (the profile may name a version's leading parts).
	It("has on each node the kubelet and container runtime versions the profile declares", func(ctx SpecContext) {
		(*env).ExpectProfile(ctx, "cluster")
	})

	// On two nodes when the cluster has two (workers first), on its one
	// node otherwise. The specs share the pods, not their verdicts: a
	// Service that does not answer says nothing about DNS.
	Context("with a server pod on one worker and a client pod on another", Ordered, ContinueOnFailure, func() {
		var (
			ns             string
			client, server *corev1.Pod
		)

		BeforeAll(func(ctx SpecContext) {
			e := *env
			a, b := podNodes(ctx, e)
			ns = e.Namespace(ctx, "cluster", "baseline")
			var err error
			server, err = workload.CreateReady(ctx, e.Klient, e.Clientset, workload.ProbePod(workload.ProbePodInput{
				Namespace: ns, Name: "server", Image: e.ProbeImage, NodeName: b,
				Args: []string{"serve", "--port", fmt.Sprint(serverPort)}, Port: serverPort,
				Labels: map[string]string{"app": "server"},
			}), e.Config.Timeouts.PodReady.Duration)
			Expect(err).NotTo(HaveOccurred())
			client, err = workload.CreateReady(ctx, e.Klient, e.Clientset, workload.ProbePod(workload.ProbePodInput{
				Namespace: ns, Name: "client", Image: e.ProbeImage, NodeName: a,
			}), e.Config.Timeouts.PodReady.Duration)
			Expect(err).NotTo(HaveOccurred())
			evidence.Record("pods", map[string]string{
				"client": client.Name + "@" + client.Spec.NodeName + " " + client.Status.PodIP,
				"server": server.Name + "@" + server.Spec.NodeName + " " + server.Status.PodIP,
			})
		})

		It("reaches the pod on the other worker by pod IP", func(ctx SpecContext) {
			e := *env
			if client.Spec.NodeName == server.Spec.NodeName {
				Skip(fmt.Sprintf("%s is the only judged node that can host the pods: no traffic between nodes to test (the Service and DNS specs run on it)", client.Spec.NodeName))
			}
			url := fmt.Sprintf("http://%s/", hostPort(server.Status.PodIP, serverPort))
			res := httpGet(ctx, e, ns, url)
			evidence.Record("answer", res)
			Expect(res.Hostname).To(Equal(server.Name), "the pod that answered %s", url)
			// The server sees the client's own pod IP: no NAT between pods.
			src, _, err := net.SplitHostPort(res.Remote)
			Expect(err).NotTo(HaveOccurred())
			Expect(src).To(Equal(client.Status.PodIP), "source address seen by the server")
		})

		It("reaches a ClusterIP Service through kube-proxy", func(ctx SpecContext) {
			e := *env
			svc := createService(ctx, e, ns)
			url := fmt.Sprintf("http://%s/", hostPort(svc.Spec.ClusterIP, 80))
			res := httpGet(ctx, e, ns, url)
			evidence.Record("service", map[string]any{"clusterIP": svc.Spec.ClusterIP, "answer": res})
			Expect(res.Hostname).To(Equal(server.Name), "the pod behind Service %s", svc.Name)
		})

		// The domain is the client's kubelet's (it writes the pod's DNS
		// search path from it), not "cluster.local": clusters are built
		// with their own, and a DNS server serving another domain than
		// the kubelets' is the misconfiguration to catch.
		It("resolves a Service name through cluster DNS, under the domain and server every node's kubelet gives its pods", func(ctx SpecContext) {
			e := *env
			var kc kubeletDNS
			Expect(nodeaccess.KubeletConfig(ctx, e.Clientset, client.Spec.NodeName, &kc)).To(Succeed())
			evidence.Record("kubelet", map[string]any{"node": client.Spec.NodeName, "clusterDomain": kc.ClusterDomain, "clusterDNS": kc.ClusterDNS})
			Expect(kc.ClusterDomain).NotTo(BeEmpty(), "the kubelet on %s has no clusterDomain: its pods get no cluster search path", client.Spec.NodeName)
			svc := createService(ctx, e, ns)
			name := fmt.Sprintf("%s.%s.svc.%s", svc.Name, ns, strings.TrimSuffix(kc.ClusterDomain, "."))
			var res probeapi.Lookup
			e.Eventually(ctx, func(ctx context.Context) error {
				return workload.ExecJSON(ctx, e.Klient, ns, client.Name, []string{"lookup", name, "--timeout", e.Config.Timeouts.NetworkCheck.Duration.String()}, &res)
			}, e.Config.Timeouts.NetworkCheckWindow.Duration).Should(Succeed(), "DNS lookup of %s from pod %s on %s (the kubelet's clusterDomain %q, clusterDNS %v)", name, client.Name, client.Spec.NodeName, kc.ClusterDomain, kc.ClusterDNS)
			evidence.Record("dns", map[string]any{"name": name, "addresses": res.Addresses, "clusterIP": svc.Spec.ClusterIP})
			Expect(res.Addresses).To(ConsistOf(svc.Spec.ClusterIP))
			// The lookup proved one node's settings; a kubelet elsewhere
			// with another domain or DNS server gives its pods a search
			// path or nameserver that answers nothing.
			e.Judge(ctx, "the kubelet's DNS settings", 0, func(ctx context.Context, g Gomega, node string) any {
				var nc kubeletDNS
				g.Expect(nodeaccess.KubeletConfig(ctx, e.Clientset, node, &nc)).To(Succeed())
				var wrong []string
				if nc.ClusterDomain != kc.ClusterDomain {
					wrong = append(wrong, fmt.Sprintf("the kubelet's clusterDomain is %q, Service names resolve under %q", nc.ClusterDomain, kc.ClusterDomain))
				}
				if !slices.Equal(nc.ClusterDNS, kc.ClusterDNS) {
					wrong = append(wrong, fmt.Sprintf("the kubelet's clusterDNS is %v, the server that answered is %v", nc.ClusterDNS, kc.ClusterDNS))
				}
				if len(wrong) > 0 {
					verdict.FailNode(fmt.Sprintf("%s (looked up from pod %s on %s)", strings.Join(wrong, "; "), client.Name, client.Spec.NodeName))
				}
				return map[string]any{"clusterDomain": nc.ClusterDomain, "clusterDNS": nc.ClusterDNS}
			})
		})
	})
})

// kubeletDNS is what a kubelet writes into its pods' resolv.conf.
type kubeletDNS struct {
	ClusterDomain string   `json:"clusterDomain"`
	ClusterDNS    []string `json:"clusterDNS"`
}

// httpGet asks the client pod to fetch url, retrying within the configured
// window: routes and kube-proxy rules converge asynchronously.
func httpGet(ctx context.Context, e *e2e.Env, ns, url string) probeapi.Get {
	var res probeapi.Get
	e.Eventually(ctx, func(ctx context.Context) error {
		return workload.ExecJSON(ctx, e.Klient, ns, "client", []string{"get", url, "--timeout", e.Config.Timeouts.NetworkCheck.Duration.String()}, &res)
	}, e.Config.Timeouts.NetworkCheckWindow.Duration).Should(Succeed(), "GET %s from pod client", url)
	Expect(res.Status).To(Equal(200))
	return res
}

func createService(ctx context.Context, e *e2e.Env, ns string) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "server-", Namespace: ns, Labels: map[string]string{workload.ManagedLabel: "true"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "server"},
			Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(serverPort), Protocol: corev1.ProtocolTCP}},
		},
	}
	got, err := e.Clientset.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return got
}

// podNodes picks the nodes of the client and server pods among the judged
// nodes that are Ready and schedulable, workers before control-plane
// nodes: two nodes when there are two, so traffic crosses between them;
// the one node twice on a single-node cluster (an edge or single-node
// OpenShift cluster), where Services and DNS still have to work. Skips
// when no judged node can host them.
func podNodes(ctx context.Context, e *e2e.Env) (client, server string) {
	nodes, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	judged := map[string]bool{}
	for _, n := range e.NodeNames() {
		judged[n] = true
	}
	var workers, planes []string
	for _, n := range nodes.Items {
		if !judged[n.Name] || n.Spec.Unschedulable || len(cluster.NotReady([]corev1.Node{n})) > 0 {
			continue
		}
		if _, cp := n.Labels["node-role.kubernetes.io/control-plane"]; cp {
			planes = append(planes, n.Name)
		} else {
			workers = append(workers, n.Name)
		}
	}
	slices.Sort(workers)
	slices.Sort(planes)
	hosts := append(workers, planes...)
	switch len(hosts) {
	case 0:
		Skip(fmt.Sprintf("no judged node of %s is Ready and schedulable to host the client and server pods", e))
	case 1:
		return hosts[0], hosts[0]
	}
	return hosts[0], hosts[1]
}

func hostPort(ip string, port int) string { return net.JoinHostPort(ip, fmt.Sprint(port)) }
