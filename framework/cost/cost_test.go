package cost

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestIsPodCreate(t *testing.T) {
	for path, want := range map[string]bool{
		"/api/v1/namespaces/x/pods":             true,
		"/api/v1/namespaces/x/pods/p/eviction":  false,
		"/api/v1/namespaces/x/services":         false,
		"/apis/apps/v1/namespaces/x/daemonsets": false,
		"/api/v1/namespaces/x/pods/p/exec":      false,
		"/api/v1/pods":                          false,
	} {
		if got := IsPodCreate(path); got != want {
			t.Errorf("IsPodCreate(%s) = %v", path, got)
		}
	}
}

func TestTransportCountsAndCollectSums(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	c := &http.Client{Transport: Transport{Next: http.DefaultTransport}}
	before := Snapshot(0)
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		req, _ := http.NewRequest(m, srv.URL+"/api/v1/namespaces/n/pods", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	AddControllerPods(2)
	got := Snapshot(3)
	if d := got.APIRequests - before.APIRequests; d != 3 {
		t.Errorf("requests +%d, want 3", d)
	}
	if d := got.APIWrites - before.APIWrites; d != 2 {
		t.Errorf("writes +%d, want 2", d)
	}
	if d := got.PodsCreated - before.PodsCreated; d != 3 {
		t.Errorf("pods +%d, want 3 (1 POST + 2 controller pods)", d)
	}
	dir := t.TempDir()
	prefix := filepath.Join(dir, "cgroups.cost")
	if err := Write(prefix+".1.json", Figures{Nodes: 3, APIRequests: 10, APIWrites: 4, PodsCreated: 5, Phases: map[string]Phase{PhaseExec: {Count: 2, Seconds: 0.5}}}); err != nil {
		t.Fatal(err)
	}
	if err := Write(prefix+".2.json", Figures{Nodes: 3, APIRequests: 1, PodsCreated: 1, Phases: map[string]Phase{PhaseExec: {Count: 1, Seconds: 0.25}, PhasePodReady: {Count: 1, Seconds: 2}}}); err != nil {
		t.Fatal(err)
	}
	sum, ok, err := Collect(prefix)
	want := Figures{Nodes: 3, APIRequests: 11, APIWrites: 4, PodsCreated: 6, Phases: map[string]Phase{PhaseExec: {Count: 3, Seconds: 0.75}, PhasePodReady: {Count: 1, Seconds: 2}}}
	if err != nil || !ok || !reflect.DeepEqual(sum, want) {
		t.Fatalf("Collect = %+v %v %v", sum, ok, err)
	}
	if _, ok, _ := Collect(prefix); ok {
		t.Error("Collect left its files")
	}
}

func TestTimeAccumulates(t *testing.T) {
	before := Snapshot(0).Phases[PhaseNamespaceGone]
	Time(PhaseNamespaceGone, time.Now().Add(-2*time.Second))
	Time(PhaseNamespaceGone, time.Now().Add(-time.Second))
	got := Snapshot(0).Phases[PhaseNamespaceGone]
	if got.Count-before.Count != 2 || got.Seconds-before.Seconds < 3 || got.Seconds-before.Seconds > 3.5 {
		t.Fatalf("phase %+v after %+v, want 2 more steps, about 3 s more", got, before)
	}
}
