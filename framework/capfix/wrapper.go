package capfix

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// WrapperName is the file name the nodeconform binary is installed under to
// act as a runc wrapper; main dispatches on it.
const WrapperName = "nodeconform-runc"

// runcCandidates are where distributions install the real runc.
var runcCandidates = []string{"/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc", "/usr/local/bin/runc"}

// RealRunc returns the first runc binary that is not the wrapper itself.
func RealRunc(self string) (string, error) {
	selfAbs, _ := filepath.EvalSymlinks(self)
	for _, c := range runcCandidates {
		abs, err := filepath.EvalSymlinks(c)
		if err != nil || abs == selfAbs {
			continue
		}
		return c, nil
	}
	return "", fmt.Errorf("no runc found in %v", runcCandidates)
}

// RunWrapper filters capabilities the host cannot grant out of the spec of a
// runc create/run/exec and then replaces the process with the real runc.
// It only returns on error.
func RunWrapper(args []string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	runc, err := RealRunc(self)
	if err != nil {
		return err
	}
	missing, err := HostMissing()
	if err != nil {
		return fmt.Errorf("read capability bounding set: %w", err)
	}
	if len(missing) > 0 {
		cwd, _ := os.Getwd()
		if t := FindTarget(args[1:], cwd); t.Path != "" {
			if err := rewrite(t, missing); err != nil {
				return fmt.Errorf("%s: filter capabilities in %s: %w", WrapperName, t.Path, err)
			}
		}
	}
	return syscall.Exec(runc, append([]string{runc}, args[1:]...), os.Environ())
}

func rewrite(t Target, drop []string) error {
	data, err := os.ReadFile(t.Path)
	if err != nil {
		return err
	}
	var out []byte
	var changed bool
	if t.IsProcess {
		out, changed, err = FilterProcess(data, drop)
	} else {
		out, changed, err = FilterSpec(data, drop)
	}
	if err != nil || !changed {
		return err
	}
	return os.WriteFile(t.Path, out, 0o600)
}
