package nodeimage

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// HostDebianMirror returns the Debian archive this host's apt uses for suite,
// so the node root filesystem comes from the same (possibly internal) mirror.
func HostDebianMirror(suite string) (string, error) {
	files := []string{"/etc/apt/sources.list"}
	more, _ := filepath.Glob("/etc/apt/sources.list.d/*")
	files = append(files, more...)
	var fallback string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var uri string
		if strings.HasSuffix(f, ".sources") {
			uri = mirrorFromDeb822(string(data), suite)
		} else {
			uri = mirrorFromList(string(data), suite)
		}
		if uri != "" {
			return uri, nil
		}
		if fallback == "" {
			fallback = anyDebianURI(string(data))
		}
	}
	if fallback != "" {
		return fallback, nil
	}
	return "", fmt.Errorf("no Debian archive for %q found in this host's apt sources; pass --debian-mirror", suite)
}

// mirrorFromList parses one-line "deb [opts] URI suite components" entries.
func mirrorFromList(text, suite string) string {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) >= 2 && f[1] == suite {
			return strings.TrimSuffix(f[0], "/")
		}
	}
	return ""
}

// mirrorFromDeb822 parses deb822 stanzas (Types/URIs/Suites).
func mirrorFromDeb822(text, suite string) string {
	for _, stanza := range strings.Split(text, "\n\n") {
		fields := map[string]string{}
		for _, line := range strings.Split(stanza, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if ok && !strings.HasPrefix(line, " ") {
				fields[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		if !containsWord(fields["types"], "deb") || !containsWord(fields["suites"], suite) {
			continue
		}
		if uris := strings.Fields(fields["uris"]); len(uris) > 0 {
			return strings.TrimSuffix(uris[0], "/")
		}
	}
	return ""
}

func anyDebianURI(text string) string {
	for _, w := range strings.Fields(text) {
		if strings.Contains(w, "://") && strings.HasSuffix(strings.TrimSuffix(w, "/"), "/debian") {
			return strings.TrimSuffix(w, "/")
		}
	}
	return ""
}

func containsWord(list, w string) bool {
	for _, x := range strings.Fields(list) {
		if x == w {
			return true
		}
	}
	return false
}
