package nodeaccess

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/nodeconform/nodeconform/framework/probeapi"
)

// fakeStream is the far end of a session: it reads request lines and
// hands them to serve, which writes replies itself.
type fakeStream struct {
	s        *session
	requests chan probeapi.SessionRequest
	out      *io.PipeWriter
}

func newFake(t *testing.T, hello bool) *fakeStream {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	f := &fakeStream{requests: make(chan probeapi.SessionRequest, 10), out: outW}
	f.s = newSession("probe-x", inW, outR, func() {})
	go func() {
		sc := bufio.NewScanner(inR)
		for sc.Scan() {
			var r probeapi.SessionRequest
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Error(err)
			}
			f.requests <- r
		}
	}()
	if hello {
		f.reply(probeapi.SessionHello{Session: probeapi.SessionVersion})
	}
	return f
}

func (f *fakeStream) reply(v any) {
	b, _ := json.Marshal(v)
	go func() { _, _ = f.out.Write(append(b, '\n')) }()
}

// cut ends the stream as a restarted kubelet does.
func (f *fakeStream) cut(err error) {
	f.s.end(err)
	_ = f.out.CloseWithError(io.EOF)
}

func TestSessionMatchesRepliesToRequests(t *testing.T) {
	f := newFake(t, true)
	ctx := context.Background()
	if err := f.s.started(ctx); err != nil {
		t.Fatal(err)
	}
	type answer struct {
		r   probeapi.SessionReply
		err error
	}
	a, b := make(chan answer, 1), make(chan answer, 1)
	go func() { r, err := f.s.do(ctx, []string{"read", "/a"}); a <- answer{r, err} }()
	ra := <-f.requests
	go func() { r, err := f.s.do(ctx, []string{"read", "/b"}); b <- answer{r, err} }()
	rb := <-f.requests
	// Answered out of order.
	f.reply(probeapi.SessionReply{ID: rb.ID, Stdout: "B"})
	f.reply(probeapi.SessionReply{ID: ra.ID, Stdout: "A", ExitCode: 1})
	if got := <-a; got.err != nil || got.r.Stdout != "A" || got.r.ExitCode != 1 || strings.Join(ra.Args, " ") != "read /a" {
		t.Errorf("a: %+v %v (request %v)", got.r, got.err, ra.Args)
	}
	if got := <-b; got.err != nil || got.r.Stdout != "B" {
		t.Errorf("b: %+v %v", got.r, got.err)
	}
}

func TestSessionCutWhileACommandRuns(t *testing.T) {
	f := newFake(t, true)
	ctx := context.Background()
	if err := f.s.started(ctx); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := f.s.do(ctx, []string{"host", "--", "true"}); errc <- err }()
	<-f.requests
	f.cut(errors.New("connection reset by peer"))
	err := <-errc
	if err == nil || !strings.Contains(err.Error(), "may have run") || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("got %v", err)
	}
	if !f.s.ended() {
		t.Fatal("a cut session still takes requests")
	}
	if _, err := f.s.do(ctx, []string{"read", "/a"}); err == nil || !strings.Contains(err.Error(), "before") {
		t.Fatalf("a request after the cut: %v", err)
	}
}

func TestSessionThatNeverStarted(t *testing.T) {
	f := newFake(t, false)
	notStarted := errors.New("failed to exec in container: failed to load task: context deadline exceeded")
	f.cut(notStarted)
	if err := f.s.started(context.Background()); !errors.Is(err, notStarted) {
		t.Fatalf("got %v, want the stream's own error", err)
	}
}

func TestSessionWrongProtocol(t *testing.T) {
	f := newFake(t, false)
	f.reply(probeapi.SessionHello{Session: probeapi.SessionVersion + 1})
	if err := f.s.started(context.Background()); err == nil || !strings.Contains(err.Error(), "protocol") {
		t.Fatalf("got %v", err)
	}
}

func TestSessionRequestContextEndsRetiresIt(t *testing.T) {
	f := newFake(t, true)
	if err := f.s.started(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Another request is in flight when the slow one gives up.
	other := make(chan probeapi.SessionReply, 1)
	go func() {
		r, err := f.s.do(context.Background(), []string{"read", "/other"})
		if err != nil {
			t.Error(err)
		}
		other <- r
	}()
	ro := <-f.requests
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := f.s.do(ctx, []string{"read", "/slow"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	slow := <-f.requests
	if f.s.usable() {
		t.Fatal("a session whose request outlived its context takes new requests")
	}
	if _, err := f.s.do(context.Background(), []string{"read", "/next"}); !errors.Is(err, errNotSent) {
		t.Fatalf("a request on the retired session: %v, want not sent", err)
	}
	if f.s.ended() {
		t.Fatal("the retired session ended with a request still in flight")
	}
	// The late reply finds no one; the in-flight one is still answered,
	// and then the session ends.
	f.reply(probeapi.SessionReply{ID: slow.ID, Stdout: "late"})
	f.reply(probeapi.SessionReply{ID: ro.ID, Stdout: "O"})
	if got := <-other; got.Stdout != "O" {
		t.Fatalf("other: %+v", got)
	}
	select {
	case <-f.s.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the retired session did not end once nothing was pending")
	}
	if !errors.Is(f.s.err, errRetired) {
		t.Fatalf("ended with %v", f.s.err)
	}
}

func TestSessionRetiredWithNothingPendingEnds(t *testing.T) {
	f := newFake(t, true)
	if err := f.s.started(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-f.requests; cancel() }()
	if _, err := f.s.do(ctx, []string{"read", "/slow"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if !f.s.ended() {
		t.Fatal("a retired session with nothing pending did not end")
	}
}

func TestSessionWriteFailsNotSent(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := newSession("probe-x", inW, outR, func() {})
	b, _ := json.Marshal(probeapi.SessionHello{Session: probeapi.SessionVersion})
	go func() { _, _ = outW.Write(append(b, '\n')) }()
	if err := s.started(context.Background()); err != nil {
		t.Fatal(err)
	}
	_ = inR.CloseWithError(errors.New("stream reset"))
	if _, err := s.do(context.Background(), []string{"read", "/a"}); !errors.Is(err, errNotSent) {
		t.Fatalf("got %v, want not sent", err)
	}
	if !s.ended() {
		t.Fatal("a session whose write failed did not end")
	}
}

func TestExecSendsANotSentRequestAgain(t *testing.T) {
	var fakes []*fakeStream
	p := &Probes{Namespace: "ns", pods: map[string]string{"n1": "probe-x"}}
	p.startFn = func(ctx context.Context, pod string) (*session, error) {
		f := newFake(t, true)
		fakes = append(fakes, f)
		if err := f.s.started(ctx); err != nil {
			return nil, err
		}
		if len(fakes) == 1 {
			// The first session opens, and ends before the request is
			// sent.
			f.cut(errors.New("connection reset by peer"))
		} else {
			go func() {
				r := <-f.requests
				f.reply(probeapi.SessionReply{ID: r.ID, Stdout: `{"ok":true}`})
			}()
		}
		return f.s, nil
	}
	var out map[string]bool
	err := p.Exec(context.Background(), "n1", []string{"read", "/a"}, &out)
	if err != nil || !out["ok"] || len(fakes) != 2 {
		t.Fatalf("Exec: %v %v after %d sessions", out, err, len(fakes))
	}
}
