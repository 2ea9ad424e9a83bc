package e2e

import (
	"strings"
	"sync"
	"testing"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"
)

// The specs this run selects (its focus, skip and label filter), by
// container texts and leaf text; nil when the suite was run without
// RunSpecs below, which Selected then reads as "every spec".
var (
	selectedMu sync.RWMutex
	selected   map[string]bool
)

// RunSpecs runs the suite as ginkgo.RunSpecs does, after a preview of the
// specs the run's filters select, so that a container's setup can leave
// out work only unselected specs need (a sandbox booted ahead for them):
// a focused run then pays for what it runs.
func RunSpecs(t *testing.T, description string) bool {
	rep := ginkgo.PreviewSpecs(description)
	sel := map[string]bool{}
	for _, s := range rep.SpecReports {
		if s.LeafNodeType == types.NodeTypeIt && !s.State.Is(types.SpecStateSkipped|types.SpecStatePending) {
			sel[specKey(s.ContainerHierarchyTexts, s.LeafNodeText)] = true
		}
	}
	selectedMu.Lock()
	selected = sel
	selectedMu.Unlock()
	errorsOnce()
	return ginkgo.RunSpecs(t, description)
}

// Selected reports whether the spec whose leaf text is leaf, in the
// container of the node running now (a BeforeAll's or a spec's), is among
// the run's selected specs. Without a preview it is true: work done ahead
// for a spec that then does not run only costs time; work left out for a
// spec that runs would have to be redone by it.
func Selected(leaf string) bool {
	selectedMu.RLock()
	defer selectedMu.RUnlock()
	if selected == nil {
		return true
	}
	return selected[specKey(ginkgo.CurrentSpecReport().ContainerHierarchyTexts, leaf)]
}

// AnySelected is Selected for any of leaves.
func AnySelected(leaves ...string) bool {
	for _, l := range leaves {
		if Selected(l) {
			return true
		}
	}
	return false
}

func specKey(containers []string, leaf string) string {
	return strings.Join(append(append([]string(nil), containers...), leaf), "\x00")
}
