package workload

import (
	"strings"
	"testing"
)

func TestParseReport(t *testing.T) {
	for _, tc := range []struct {
		name, log string
		done      bool
		reads     int
		errHas    string
	}{
		{name: "nothing yet", log: ""},
		{name: "half a line", log: `[{"path":"/proc/sys/kernel/msgmax","con`},
		{name: "reads", log: `[{"path":"/proc/sys/kernel/msgmax","content":"65536\n"},{"path":"/proc/sys/kernel/sem","content":"1 2 3 4\n"}]` + "\n", done: true, reads: 2},
		{name: "probe error", log: `{"error":"open /proc/sys/net/x: no such file or directory"}` + "\n", done: true, errHas: "no such file"},
		{name: "other object", log: `{"hostname":"x"}` + "\n", done: true, errHas: "not a report"},
		{name: "garbage", log: "sh: not found\n", done: true, errHas: "decode report"},
		{name: "later lines ignored", log: `[{"path":"/a","content":"1"}]` + "\nlater\n", done: true, reads: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reads, done, err := ParseReport([]byte(tc.log))
			if done != tc.done {
				t.Fatalf("done = %v, want %v", done, tc.done)
			}
			if tc.errHas == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tc.errHas != "" && (err == nil || !strings.Contains(err.Error(), tc.errHas)) {
				t.Fatalf("error %v, want one containing %q", err, tc.errHas)
			}
			if len(reads) != tc.reads {
				t.Fatalf("%d reads, want %d", len(reads), tc.reads)
			}
		})
	}
}
