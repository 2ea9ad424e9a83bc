package cluster

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// A process in a frozen cgroup cannot be killed: Docker then fails to
// stop a kind node ("did not receive an exit event") and the node outlives
// its cluster's deletion under the cluster's name. Seen on 2026-12-06: a
// runc killed while it had its container's cgroup v1 freezer FROZEN (runc
// freezes it while systemd updates device rules) left two `runc init`
// processes frozen. Thawing a cgroup that is not frozen changes nothing,
// so every node's tree is thawed before it is deleted.

// containerCgroupRoots are the places Docker puts a container's cgroup,
// for the cgroupfs and systemd drivers on v1 (freezer) and v2.
func containerCgroupRoots(sysfs, id string) []string {
	return []string{
		filepath.Join(sysfs, "freezer", "docker", id),
		filepath.Join(sysfs, "freezer", "system.slice", "docker-"+id+".scope"),
		filepath.Join(sysfs, "docker", id),
		filepath.Join(sysfs, "system.slice", "docker-"+id+".scope"),
	}
}

// thawTree thaws every frozen cgroup under root (freezer.state FROZEN on
// v1, cgroup.freeze 1 on v2) and returns the files it wrote. A root that
// does not exist has nothing to thaw.
func thawTree(root string) ([]string, error) {
	var thawed []string
	var errs []error
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			errs = append(errs, err)
			return nil
		}
		if d.IsDir() {
			return nil
		}
		var frozen, thaw string
		switch d.Name() {
		case "freezer.state":
			frozen, thaw = "FROZEN", "THAWED"
		case "cgroup.freeze":
			frozen, thaw = "1", "0"
		default:
			return nil
		}
		b, rerr := os.ReadFile(p)
		if rerr != nil || strings.TrimSpace(string(b)) != frozen {
			return nil
		}
		// A v1 cgroup under a frozen one reads FROZEN too; only the one
		// frozen itself needs (and takes) the write.
		if self, serr := os.ReadFile(filepath.Join(filepath.Dir(p), "freezer.self_freezing")); d.Name() == "freezer.state" && serr == nil && strings.TrimSpace(string(self)) == "0" {
			return nil
		}
		if werr := os.WriteFile(p, []byte(thaw), 0); werr != nil {
			errs = append(errs, werr)
			return nil
		}
		thawed = append(thawed, p)
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return thawed, errors.Join(errs...)
}

// thawContainers thaws the cgroups of the named containers. It needs to
// run where their cgroups are (Docker's host) with the right to write
// them; a container Docker no longer knows is skipped.
func (k *Kind) thawContainers(names []string) {
	if len(names) == 0 {
		return
	}
	out, _ := exec.Command("docker", append([]string{"inspect", "-f", "{{.Id}}"}, names...)...).Output()
	for _, id := range strings.Fields(string(out)) {
		for _, root := range containerCgroupRoots("/sys/fs/cgroup", id) {
			thawed, err := thawTree(root)
			for _, f := range thawed {
				k.logger.Warnf("thawed frozen cgroup %s (a frozen process keeps Docker from removing the node)", f)
			}
			if err != nil {
				k.logger.Warnf("thaw cgroups of container %s: %v", id[:min(12, len(id))], err)
			}
		}
	}
}
