// Package config holds nodeconform's timeouts, intervals and expected
// values. Defaults are embedded; a user file overrides them key by key.
package config

import (
	_ "embed"
	"fmt"
	"os"
	"time"

	"sigs.k8s.io/yaml"
)

//go:embed defaults.yaml
var defaults []byte

// Duration is a time.Duration written as "90s" in YAML.
type Duration struct{ time.Duration }

// UnmarshalJSON parses a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := yaml.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// Config is the whole configuration.
type Config struct {
	Timeouts struct {
		APIReachable       Duration `json:"apiReachable"`
		ClusterReady       Duration `json:"clusterReady"`
		NodeReady          Duration `json:"nodeReady"`
		PodReady           Duration `json:"podReady"`
		ProbeReady         Duration `json:"probeReady"`
		NodeRestart        Duration `json:"nodeRestart"`
		MachineConfigPool  Duration `json:"machineConfigPool"`
		ClusterLock        Duration `json:"clusterLock"`
		NetworkCheck       Duration `json:"networkCheck"`
		NetworkCheckWindow Duration `json:"networkCheckWindow"`
		KubeProxySync      Duration `json:"kubeProxySync"`
		NamespaceDeletion  Duration `json:"namespaceDeletion"`
		KataConfig         Duration `json:"kataConfig"`
		SandboxEvent       Duration `json:"sandboxEvent"`
		OwnerLease         Duration `json:"ownerLease"`
		PullSecretGrant    Duration `json:"pullSecretGrant"`
	} `json:"timeouts"`
	Intervals struct {
		Poll Duration `json:"poll"`
	} `json:"intervals"`
	// Client is the suites' client-side rate limit towards the API server.
	Client struct {
		QPS   float32 `json:"qps"`
		Burst int     `json:"burst"`
	} `json:"client"`
	Cgroups struct {
		// ThrottleWindow is how long CPU usage is measured.
		ThrottleWindow Duration `json:"throttleWindow"`
		// EscapeWindow is how long the CFS-quota negative control
		// measures a busy loop that escaped its limit.
		EscapeWindow Duration `json:"escapeWindow"`
		// ThrottleSamples is how many windows a node gets before the
		// throttling check fails it (a busy host lowers one window).
		ThrottleSamples int `json:"throttleSamples"`
		// LimitedCPUMin/Max bound the CPU fraction of a busy loop under
		// limits.cpu 100m.
		LimitedCPUMin float64 `json:"limitedCPUMin"`
		LimitedCPUMax float64 `json:"limitedCPUMax"`
		// UnlimitedCPUMin is the least a busy loop without a limit must use.
		UnlimitedCPUMin float64 `json:"unlimitedCPUMin"`
	} `json:"cgroups"`
	RuntimeClass struct {
		// Classes are the RuntimeClasses under test, each judged on its own
		// (a profile's runtimeClasses replace them, by name).
		Classes []RuntimeClass `json:"classes"`
		// SandboxMemoryMargin is how far (a fraction of the declared
		// memory overhead) a sandbox's measured steady-state memory may
		// exceed that overhead before the class fails.
		SandboxMemoryMargin float64 `json:"sandboxMemoryMargin"`
		// SandboxSettle ends the sampling of an idle pod's memory, counted
		// from when the pod was seen Ready; the highest sample is its
		// steady state.
		SandboxSettle Duration `json:"sandboxSettle"`
	} `json:"runtimeClass"`
	NFD struct {
		// SleepInterval is nfd-worker's core.sleepInterval in the NFD
		// nodeconform deploys (NFD's own default is 60 s).
		SleepInterval Duration `json:"sleepInterval"`
		// LabelWithin bounds how long a label may take to appear or go
		// after a rule or a node's features change.
		LabelWithin Duration `json:"labelWithin"`
		// Deploy is how long nfd-master and every nfd-worker may take to
		// be ready.
		Deploy Duration `json:"deploy"`
	} `json:"nfd"`
	Nodes struct {
		// MaxParallel bounds how many nodes a per-node check examines at
		// once (pods started, files read).
		MaxParallel int `json:"maxParallel"`
	} `json:"nodes"`
	VM struct {
		// CPUs and MemoryMiB size the cgroup v2 VM node's guest.
		CPUs      int `json:"cpus"`
		MemoryMiB int `json:"memoryMiB"`
		// HugePages2Mi are reserved in the guest at boot.
		HugePages2Mi int `json:"hugePages2Mi"`
		// Boot bounds QEMU start to the guest's sshd; Join bounds kubeadm
		// join to the node Ready.
		Boot Duration `json:"boot"`
		Join Duration `json:"join"`
	} `json:"vm"`
	Cluster struct {
		Name     string `json:"name"`
		MinNodes int    `json:"minNodes"`
		// MinWorkers is ignored (older configuration files set it).
		MinWorkers int `json:"minWorkers"`
	} `json:"cluster"`
}

// RuntimeClass is one RuntimeClass under test.
type RuntimeClass struct {
	Name    string `json:"name"`
	Handler string `json:"handler"`
	// Overhead is the expected overhead.podFixed, as resource quantities.
	Overhead map[string]string `json:"overhead"`
	// NodeSelector is the expected scheduling.nodeSelector (and the one
	// the suite gives a RuntimeClass it creates).
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Fixture is the embedded manifest (fixtures/) the suite creates the
	// RuntimeClass from on kind when absent; empty builds it from the
	// fields above.
	Fixture string `json:"fixture,omitempty"`
	// Required fails the class's specs where the RuntimeClass is missing
	// or no node offers its handler, instead of skipping them.
	Required bool `json:"required"`
	// Isolated fails the isolation spec when the class's pods share the
	// node's kernel, instead of reporting it as skipped.
	Isolated bool `json:"isolated"`
}

// Class returns the class under test of that name.
func (c *Config) Class(name string) (RuntimeClass, bool) {
	for _, rc := range c.RuntimeClass.Classes {
		if rc.Name == name {
			return rc, true
		}
	}
	return RuntimeClass{}, false
}

// Default returns the embedded defaults.
func Default() *Config {
	c, err := parse(defaults, &Config{})
	if err != nil {
		panic("embedded defaults.yaml: " + err.Error())
	}
	return c
}

// Load returns the defaults overridden by the file at path ("" for none).
func Load(path string) (*Config, error) {
	c := Default()
	if path == "" {
		return c, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	if _, err := parse(data, c); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return c, nil
}

// Override applies overrides (YAML or JSON, the keys of defaults.yaml) to
// c, key by key; unknown keys are errors.
func (c *Config) Override(data []byte) error {
	_, err := parse(data, c)
	return err
}

// parse decodes data over into. A list in data replaces the list in into:
// decoding a list over a longer one would merge each new element into the
// old one at its index (a class inheriting another's overhead).
func parse(data []byte, into *Config) (*Config, error) {
	var keys struct {
		RuntimeClass map[string]any `json:"runtimeClass"`
	}
	if err := yaml.Unmarshal(data, &keys); err == nil {
		if _, ok := keys.RuntimeClass["classes"]; ok {
			into.RuntimeClass.Classes = nil
		}
	}
	if err := yaml.UnmarshalStrict(data, into); err != nil {
		return nil, err
	}
	return into, nil
}
