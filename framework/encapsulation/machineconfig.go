package encapsulation

import (
	"fmt"

	"sigs.k8s.io/yaml"
)

// MachineConfig is the part of OpenShift's MachineConfig (Ignition 3.2
// config) the encapsulation fixtures use. Parsing is strict, so a fixture
// with a misspelt field fails instead of being applied half-read. There is
// no MachineConfig CRD on kind: this is how the fixtures are validated here.
type MachineConfig struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels,omitempty"`
	} `json:"metadata"`
	Spec struct {
		Config struct {
			Ignition struct {
				Version string `json:"version"`
			} `json:"ignition"`
			Systemd struct {
				Units []struct {
					Name     string `json:"name"`
					Enabled  *bool  `json:"enabled,omitempty"`
					Contents string `json:"contents,omitempty"`
					Mask     *bool  `json:"mask,omitempty"`
				} `json:"units"`
			} `json:"systemd"`
		} `json:"config"`
	} `json:"spec"`
}

// ParseMachineConfig decodes a MachineConfig strictly and checks the
// fields the API server would require.
func ParseMachineConfig(data []byte) (*MachineConfig, error) {
	var mc MachineConfig
	if err := yaml.UnmarshalStrict(data, &mc); err != nil {
		return nil, fmt.Errorf("MachineConfig: %w", err)
	}
	if mc.APIVersion != "machineconfiguration.openshift.io/v1" || mc.Kind != "MachineConfig" {
		return nil, fmt.Errorf("MachineConfig %s: apiVersion/kind %s/%s", mc.Metadata.Name, mc.APIVersion, mc.Kind)
	}
	if mc.Metadata.Name == "" {
		return nil, fmt.Errorf("MachineConfig without metadata.name")
	}
	if mc.Spec.Config.Ignition.Version == "" {
		return nil, fmt.Errorf("MachineConfig %s: spec.config.ignition.version is required", mc.Metadata.Name)
	}
	return &mc, nil
}
