package e2e

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kind/pkg/log"

	"github.com/nodeconform/nodeconform/framework/nodestate"
	"github.com/nodeconform/nodeconform/framework/profile"
)

// CaptureProfile writes the profile of the cluster s names, read-only: it
// deploys the probe in its own namespace (verify mode), reads every
// node's state and removes the probe again. Every node must be readable:
// a profile captured around a broken node would declare the breakage.
func CaptureProfile(ctx context.Context, s Settings, name string, logger log.Logger) (*profile.Profile, error) {
	s.Mode, s.Profile, s.Nodes = "verify", "", ""
	data, err := Up(ctx, s, logger, WithNodeAccess())
	if err != nil {
		return nil, err
	}
	env, err := Connect(data)
	if err != nil {
		_ = Abandon(context.WithoutCancel(ctx), data)
		return nil, err
	}
	defer func() {
		if err := RemoveLeftovers(context.WithoutCancel(ctx), env); err != nil {
			logger.Errorf("remove the probe: %v", err)
		}
	}()
	list, err := env.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var obs []profile.Observed
	var problems []string
	unreachable := env.Unreachable()
	for i := range list.Items {
		n := &list.Items[i]
		if why, ok := unreachable[n.Name]; ok {
			problems = append(problems, fmt.Sprintf("node %s: %s", n.Name, why))
			continue
		}
		st, err := nodestate.Read(ctx, nodestate.Input{Clientset: env.Clientset, Probes: env.Nodes, Node: n}, nil)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		obs = append(obs, profile.Observed{Name: n.Name, Labels: n.Labels, State: st})
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("a profile is captured from a cluster whose every node can be read:\n%s", strings.Join(problems, "\n"))
	}
	return profile.Capture(name, obs)
}
