package encapsulation

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/nodeconform/nodeconform/fixtures"
)

func ns(sd, kl, rt string) NodeNamespaces {
	return NodeNamespaces{Node: "n1", Systemd: sd, Kubelet: kl, Runtime: rt, RuntimeCmd: "containerd"}
}

func TestCheck(t *testing.T) {
	off := ns("mnt:[1]", "mnt:[1]", "mnt:[1]")
	on := ns("mnt:[1]", "mnt:[2]", "mnt:[2]")
	kubeletOnly := ns("mnt:[1]", "mnt:[2]", "mnt:[1]")
	runtimeOnly := ns("mnt:[1]", "mnt:[1]", "mnt:[2]")
	if err := Check(false, off); err != nil {
		t.Errorf("off/off: %v", err)
	}
	if err := Check(true, on); err != nil {
		t.Errorf("on/on: %v", err)
	}
	for name, c := range map[string]struct {
		want bool
		o    NodeNamespaces
		msg  string
	}{
		"expected on, found off":     {true, off, "share systemd's"},
		"expected off, found on":     {false, on, "expected off"},
		"only kubelet encapsulated":  {true, kubeletOnly, "only one of them"},
		"only runtime encapsulated":  {true, runtimeOnly, "only one of them"},
		"only kubelet, expected off": {false, kubeletOnly, "only one of them"},
		"missing observation":        {true, ns("", "mnt:[2]", "mnt:[2]"), "incomplete"},
	} {
		err := Check(c.want, c.o)
		if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), "n1") {
			t.Errorf("%s: got %v, want error containing %q and the node", name, err, c.msg)
		}
	}
}

func TestCheckReverted(t *testing.T) {
	clean := RevertState{Node: "n1", UnitEnabled: "not-found", UnitActive: "inactive"}
	if err := CheckReverted(clean); err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]RevertState{
		"unit left enabled": {Node: "n1", UnitEnabled: "enabled\n", UnitActive: "inactive", UnitFileFound: true},
		"unit still active": {Node: "n1", UnitEnabled: "disabled", UnitActive: "active"},
		"pinned ns left":    {Node: "n1", UnitEnabled: "not-found", PinnedNSFile: true},
		"drop-in left":      {Node: "n1", UnitEnabled: "not-found", DropIns: []string{"kubelet.service.d/90-nodeconform-kubens.conf"}},
	} {
		if err := CheckReverted(s); err == nil {
			t.Errorf("%s: want error", name)
		}
	}
}

func TestWrapExecStart(t *testing.T) {
	show := "{ path=/usr/bin/kubelet ; argv[]=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }"
	got, err := WrapExecStart(show, "/usr/local/bin/kubensenter")
	if err != nil || got != "/usr/local/bin/kubensenter /usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS" {
		t.Fatalf("%q %v", got, err)
	}
	if _, err := WrapExecStart("{ path=/x ; argv[]=/usr/local/bin/kubensenter /x ; }", "/usr/local/bin/kubensenter"); err == nil {
		t.Fatal("double wrapping must be refused")
	}
	if _, err := WrapExecStart("", "/k"); err == nil {
		t.Fatal("want error on empty show output")
	}
	if !strings.Contains(DropIn("/k /x"), "ExecStart=\nExecStart=/k /x") {
		t.Fatal("drop-in must reset ExecStart")
	}
}

func TestMatrix(t *testing.T) {
	for _, enc := range []bool{false, true} {
		if d := Compare(ExpectedMatrix(enc), ExpectedMatrix(enc)); len(d) != 0 {
			t.Fatalf("self-compare: %v", d)
		}
	}
	// Encapsulation that does not hide container mounts from systemd.
	d := Compare(ExpectedMatrix(true), ExpectedMatrix(false))
	if len(d) != 2 || !strings.Contains(strings.Join(d, ";"), "systemd sees it=true, want false") {
		t.Fatalf("diff: %v", d)
	}
	// A None-propagation mount leaking to the host.
	obs := ExpectedMatrix(false)
	obs["c"][Systemd] = true
	if d := Compare(ExpectedMatrix(false), obs); len(d) != 1 {
		t.Fatalf("diff: %v", d)
	}
	delete(obs["b"], Kubelet)
	if d := Compare(ExpectedMatrix(false), obs); len(d) != 2 {
		t.Fatalf("unobserved cell must be reported: %v", d)
	}
	// A runtime defaulting to rslave: the default container sees the
	// node's mount and container 1's.
	for _, enc := range []bool{false, true} {
		obs := ExpectedMatrix(enc)
		obs[NodeMount][Container4], obs["a"][Container4] = true, true
		if d := Compare(ExpectedMatrix(enc), obs); len(d) != 2 || !strings.Contains(d[0], "container4-default sees it=true, want false") {
			t.Fatalf("default propagation leak (encapsulated=%v): %v", enc, d)
		}
	}
	// A kubens namespace made private from the host: the node's mount
	// no longer reaches kubelet, the runtime or HostToContainer.
	obs = ExpectedMatrix(true)
	obs[NodeMount][Kubelet], obs[NodeMount][Runtime], obs[NodeMount][Container1], obs[NodeMount][Container2] = false, false, false, false
	if d := Compare(ExpectedMatrix(true), obs); len(d) != 4 {
		t.Fatalf("node mount cut off: %v", d)
	}
}

// The OpenShift fixtures are exactly the seeds' MachineConfigs.
func TestMachineConfigFixtures(t *testing.T) {
	for role, name := range map[string]string{"master": "99-kubens-master", "worker": "99-kubens-worker"} {
		data := fixtures.MustRead("encapsulation/" + name + ".yaml")
		mc, err := ParseMachineConfig(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if mc.Metadata.Name != name || mc.Metadata.Labels["machineconfiguration.openshift.io/role"] != role ||
			mc.Spec.Config.Ignition.Version != "3.2.0" || len(mc.Spec.Config.Systemd.Units) != 1 ||
			mc.Spec.Config.Systemd.Units[0].Name != "kubens.service" || !*mc.Spec.Config.Systemd.Units[0].Enabled {
			t.Fatalf("%s: %+v", name, mc)
		}
	}
	bad := "apiVersion: machineconfiguration.openshift.io/v1\nkind: MachineConfig\nmetadata: {name: x}\nspec:\n  config:\n    ignition: {version: 3.2.0}\n    systemd:\n      units:\n      - name: kubens.service\n        enabeld: true\n"
	if _, err := ParseMachineConfig([]byte(bad)); err == nil || !strings.Contains(err.Error(), "enabeld") {
		t.Fatalf("typo must be reported: %v", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(fixtures.MustRead("encapsulation/99-kubens-worker.yaml"), &raw); err != nil {
		t.Fatal(err)
	}
}
