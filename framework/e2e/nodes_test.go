package e2e

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/profile"
)

func TestProfileClasses(t *testing.T) {
	yes := true
	configured := config.Default().RuntimeClass.Classes
	declared := []profile.RuntimeClass{
		{Name: "gvisor", Handler: "runsc", Overhead: map[string]resource.Quantity{"memory": resource.MustParse("160Mi")}, Required: &yes},
		{Name: "kata-qemu", Handler: "kata-qemu", NodeSelector: map[string]string{"sandbox": "vm"}, Isolated: &yes},
	}
	got := ProfileClasses(configured, declared)
	if len(got) != 2 {
		t.Fatalf("want exactly the declared classes, got %+v", got)
	}
	g := got[0]
	if g.Name != "gvisor" || g.Overhead["memory"] != "160Mi" || g.Overhead["cpu"] != "" || !g.Required || !g.Isolated || g.Fixture == "" {
		t.Errorf("gvisor: declared overhead and required, configured fixture and isolation: %+v", g)
	}
	q := got[1]
	if q.Handler != "kata-qemu" || !q.Isolated || q.Required || q.Fixture != "" || q.NodeSelector["sandbox"] != "vm" {
		t.Errorf("a class only the profile names: %+v", q)
	}
}

func TestSelectNodesLeavesOutNodesThatAreNotLinux(t *testing.T) {
	node := func(name, os string, labels map[string]string, cordoned bool) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Spec: corev1.NodeSpec{Unschedulable: cordoned}}
		n.Status.NodeInfo.OperatingSystem = os
		return n
	}
	cs := fake.NewClientset(
		node("lin", "linux", map[string]string{"pool": "a"}, false),
		node("win", "windows", map[string]string{"pool": "a"}, false),
		node("labelled-win", "", map[string]string{"pool": "a", corev1.LabelOSStable: "windows"}, false),
		node("cordoned", "linux", map[string]string{"pool": "b"}, true),
	)
	targets, notJudged, err := SelectNodes(context.Background(), cs, nil, "")
	if err != nil || len(targets) != 1 || targets[0].Name != "lin" {
		t.Fatalf("targets %v, %v", targets, err)
	}
	if !strings.HasPrefix(notJudged["win"], "operating system windows") || !strings.HasPrefix(notJudged["labelled-win"], "operating system windows") || notJudged["cordoned"] == "" || len(notJudged) != 3 {
		t.Errorf("not judged: %v", notJudged)
	}
	// A profile group selecting the pool still leaves out its Windows nodes.
	p, err := profile.Parse([]byte("apiVersion: nodeconform.io/v1alpha1\nkind: NodeProfile\nmetadata: {name: t}\nspec:\n  groups:\n  - name: a\n    nodeSelector: {matchLabels: {pool: a}}\n    node: {cpuCFSQuota: true}\n"))
	if err != nil {
		t.Fatal(err)
	}
	targets, notJudged, err = SelectNodes(context.Background(), cs, p, "")
	if err != nil || len(targets) != 1 || targets[0].Name != "lin" || notJudged["cordoned"] != "in no profile group" {
		t.Errorf("with a profile: %v %v %v", targets, notJudged, err)
	}
}
