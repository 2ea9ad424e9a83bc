package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodeconform/nodeconform/framework/probeapi"
)

func TestSessionAnswersEveryRequest(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	release := make(chan struct{})
	run := func(args []string) ([]byte, []byte, int, error) {
		switch args[0] {
		case "slow":
			<-release
			return []byte(`{"slow":true}`), nil, 0, nil
		case "fail":
			return []byte(`{"error":"no"}`), []byte("bad"), 1, nil
		case "missing":
			return nil, nil, 0, errors.New("exec: not found")
		}
		return []byte(`{"args":"` + strings.Join(args, " ") + `"}`), nil, 0, nil
	}
	done := make(chan error, 1)
	go func() { done <- session(inR, outW, run); _ = outW.Close() }()
	sc := bufio.NewScanner(outR)
	if !sc.Scan() {
		t.Fatal("no hello")
	}
	var h probeapi.SessionHello
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Session != probeapi.SessionVersion {
		t.Fatalf("hello %q: %v", sc.Text(), err)
	}
	var wmu sync.Mutex
	send := func(id uint64, args ...string) {
		b, _ := json.Marshal(probeapi.SessionRequest{ID: id, Args: args})
		wmu.Lock()
		defer wmu.Unlock()
		if _, err := inW.Write(append(b, '\n')); err != nil {
			t.Error(err)
		}
	}
	// The slow one must not hold back those after it.
	send(1, "slow")
	send(2, "read", "/x")
	send(3, "fail")
	send(4, "missing")
	send(5, "session")
	got := map[uint64]probeapi.SessionReply{}
	read := func() {
		if !sc.Scan() {
			t.Fatalf("reply missing: %v", sc.Err())
		}
		var r probeapi.SessionReply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		got[r.ID] = r
	}
	for range 4 {
		read()
	}
	if _, ok := got[1]; ok {
		t.Fatal("the slow request answered before it ended")
	}
	// Stdin ends with a request in flight: it is still answered.
	_ = inW.Close()
	time.Sleep(10 * time.Millisecond)
	close(release)
	read()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r := got[1]; r.Stdout != `{"slow":true}` || r.ExitCode != 0 {
		t.Errorf("slow: %+v", r)
	}
	if r := got[2]; r.Stdout != `{"args":"read /x"}` {
		t.Errorf("read: %+v", r)
	}
	if r := got[3]; r.ExitCode != 1 || r.Stderr != "bad" || r.Stdout != `{"error":"no"}` {
		t.Errorf("fail: %+v", r)
	}
	if r := got[4]; r.Error != "exec: not found" {
		t.Errorf("missing: %+v", r)
	}
	if r := got[5]; !strings.Contains(r.Error, "refused") {
		t.Errorf("a session inside a session: %+v", r)
	}
}

func TestSessionRejectsMalformedRequest(t *testing.T) {
	err := session(strings.NewReader("not json\n"), io.Discard, func([]string) ([]byte, []byte, int, error) { return nil, nil, 0, nil })
	if err == nil || !strings.Contains(err.Error(), "malformed request") {
		t.Fatalf("got %v", err)
	}
}
