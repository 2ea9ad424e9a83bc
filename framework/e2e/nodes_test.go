package e2e

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"

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
