package nodeaccess

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/nodeconform/nodeconform/framework/cost"
	"github.com/nodeconform/nodeconform/framework/probeapi"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// A session is one long-lived exec of `nodeconform-probe session` in a
// probe pod, carrying every probe command a process sends that node.
// Each exec of its own costs a new TLS connection to the API server, one
// from there to the kubelet and one to the runtime's streaming server,
// and a runc exec: 0.25 s on an idle lab node and several seconds on a
// loaded one, for commands that themselves take milliseconds. A request
// on a session is a line written to an open stream, run as a child of the
// session process in the same container, so it sees what an exec would.
//
// The stream is cut when the kubelet or the runtime restarts (the node
// changes restart both). A command in flight then has an error that says
// it may have run, as a one-shot exec cut mid-command had; the next
// request opens a new session, whose failure to start is an exec error
// like any other (HostRetry retries it).
//
// A request that outlives its context retires its session: a stream that
// stalls without breaking (the SPDY connection's pings find only dead
// peers) would otherwise hold every later command to that node until its
// own deadline. A retired session takes no new request and ends once the
// requests already on it are answered or given up.
type session struct {
	pod    string
	cancel context.CancelFunc
	hello  chan struct{}
	done   chan struct{} // closed when the stream has ended; err says why

	wmu   sync.Mutex // serializes writes of whole request lines
	stdin io.WriteCloser

	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan probeapi.SessionReply
	retired bool
	err     error
}

// errNotSent marks a request that never reached the probe, so it did not
// run and can be sent again on another session.
var errNotSent = errors.New("not sent")

// errRetired ends a retired session once nothing is pending on it.
var errRetired = errors.New("retired after a request outlived its context")

// sessionStderrLimit bounds what is kept of a session's stderr (the
// session's own, not its commands': those are in their replies).
const sessionStderrLimit = 4 << 10

// newSession serves replies read from stdout; closing stdin ends the
// session. stdout must return an error (io.EOF at least) when the stream
// ends, and end(err) must then be called with the stream's outcome.
func newSession(pod string, stdin io.WriteCloser, stdout io.Reader, cancel context.CancelFunc) *session {
	s := &session{pod: pod, cancel: cancel, hello: make(chan struct{}), done: make(chan struct{}),
		stdin: stdin, pending: map[uint64]chan probeapi.SessionReply{}}
	go s.read(stdout)
	return s
}

func (s *session) read(stdout io.Reader) {
	dec := json.NewDecoder(stdout)
	var h probeapi.SessionHello
	if err := dec.Decode(&h); err != nil {
		s.end(err)
		return
	}
	if h.Session != probeapi.SessionVersion {
		s.end(fmt.Errorf("probe session protocol %d, want %d (a probe image of another nodeconform build)", h.Session, probeapi.SessionVersion))
		return
	}
	close(s.hello)
	for {
		var r probeapi.SessionReply
		if err := dec.Decode(&r); err != nil {
			s.end(err)
			return
		}
		s.mu.Lock()
		ch, ok := s.pending[r.ID]
		delete(s.pending, r.ID)
		idle := s.retired && len(s.pending) == 0
		s.mu.Unlock()
		if ok {
			ch <- r // buffered: the caller may have gone
		}
		if idle {
			s.end(errRetired)
			return
		}
	}
}

// end records why the session ended (the first reason wins) and releases
// everyone waiting on it.
func (s *session) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = errors.New("the session's stream ended")
	}
	s.err = err
	close(s.done)
	s.cancel()
	_ = s.stdin.Close()
}

// ended reports whether the session's stream has ended.
func (s *session) ended() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// usable reports whether the session takes new requests.
func (s *session) usable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err == nil && !s.retired
}

// started waits for the session's hello: nil once it serves, else the
// stream's error (the exec never ran) or ctx's.
func (s *session) started(ctx context.Context) error {
	select {
	case <-s.hello:
		return nil
	case <-s.done:
		// The hello and the end can both be there: the hello decides.
		select {
		case <-s.hello:
			return nil
		default:
		}
		return s.err
	case <-ctx.Done():
		s.end(fmt.Errorf("not started: %w", ctx.Err()))
		return ctx.Err()
	}
}

// do runs the probe with args on the session and returns its reply. An
// error wrapping errNotSent means the probe never saw the request.
func (s *session) do(ctx context.Context, args []string) (probeapi.SessionReply, error) {
	ch := make(chan probeapi.SessionReply, 1)
	s.mu.Lock()
	if s.err != nil || s.retired {
		err := s.err
		if err == nil {
			err = errRetired
		}
		s.mu.Unlock()
		return probeapi.SessionReply{}, s.notSent(args, err)
	}
	s.next++
	id := s.next
	s.pending[id] = ch
	s.mu.Unlock()
	line, _ := json.Marshal(probeapi.SessionRequest{ID: id, Args: args})
	line = append(line, '\n')
	s.wmu.Lock()
	_, werr := s.stdin.Write(line)
	s.wmu.Unlock()
	if werr != nil {
		// The probe runs only whole lines, and this one was not written
		// whole.
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
		s.end(werr)
		return probeapi.SessionReply{}, s.notSent(args, werr)
	}
	select {
	case r := <-ch:
		return r, nil
	case <-s.done:
		select {
		case r := <-ch:
			return r, nil
		default:
		}
		return probeapi.SessionReply{}, fmt.Errorf("probe session in pod %s ended while %v ran (it may have run): %w", s.pod, args, s.err)
	case <-ctx.Done():
		s.mu.Lock()
		delete(s.pending, id)
		s.retired = true
		idle := len(s.pending) == 0
		s.mu.Unlock()
		if idle {
			s.end(errRetired)
		}
		return probeapi.SessionReply{}, ctx.Err()
	}
}

// notSent is the error of a request the probe never received.
func (s *session) notSent(args []string, cause error) error {
	return fmt.Errorf("probe session in pod %s ended before %v was sent (%w): %w", s.pod, args, errNotSent, cause)
}

// slot is a session being opened or open, so that concurrent callers for
// the same pod share one open.
type slot struct {
	ready chan struct{}
	s     *session
	err   error
}

// session returns the open session to pod, opening one if there is none
// or the last one ended.
func (p *Probes) session(ctx context.Context, pod string) (*session, error) {
	for {
		p.smu.Lock()
		if p.sessions == nil {
			p.sessions = map[string]*slot{}
		}
		sl, ok := p.sessions[pod]
		if !ok {
			sl = &slot{ready: make(chan struct{})}
			p.sessions[pod] = sl
			p.smu.Unlock()
			sl.s, sl.err = p.openSession(ctx, pod)
			close(sl.ready)
			if sl.err != nil {
				p.forget(pod, sl)
			}
			return sl.s, sl.err
		}
		p.smu.Unlock()
		select {
		case <-sl.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if sl.err == nil && sl.s.usable() {
			return sl.s, nil
		}
		p.forget(pod, sl)
		// Another caller's open failed: its error is its own (a context
		// that ended, a node restarting), so this caller opens afresh.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

func (p *Probes) forget(pod string, sl *slot) {
	p.smu.Lock()
	defer p.smu.Unlock()
	if p.sessions[pod] == sl {
		delete(p.sessions, pod)
	}
}

// openSession execs the session in pod and waits for its hello, making
// the exec again when the runtime did not start it (workload.ExecNotStarted),
// as a one-shot exec would be.
func (p *Probes) openSession(ctx context.Context, pod string) (*session, error) {
	var err error
	for attempt := 1; ; attempt++ {
		began := time.Now()
		var s *session
		start := p.startSession
		if p.startFn != nil {
			start = p.startFn
		}
		s, err = start(ctx, pod)
		cost.Time(cost.PhaseSessionOpen, began)
		if err == nil {
			return s, nil
		}
		if attempt >= workload.ExecAttempts || !workload.ExecNotStarted(err) || ctx.Err() != nil {
			break
		}
		cost.Time(cost.PhaseExecRetried, began)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
	return nil, fmt.Errorf("open probe session in %s/%s: %w", p.Namespace, pod, err)
}

func (p *Probes) startSession(ctx context.Context, pod string) (*session, error) {
	req := p.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(p.Namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: probeContainer,
			Command:   []string{"/nodeconform-probe", "session"},
			Stdin:     true, Stdout: true, Stderr: true,
		}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(p.kl.RESTConfig(), "POST", req.URL())
	if err != nil {
		return nil, err
	}
	// The stream outlives the request that opened it: its own context,
	// cancelled when the session ends.
	sctx, cancel := context.WithCancel(context.Background())
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := newSession(pod, inW, outR, cancel)
	go func() {
		var stderr limitedBuffer
		err := ex.StreamWithContext(sctx, remotecommand.StreamOptions{Stdin: inR, Stdout: outW, Stderr: &stderr})
		if err != nil {
			if msg := strings.TrimSpace(stderr.String()); msg != "" {
				err = fmt.Errorf("%w (stderr: %s)", err, msg)
			}
		}
		// end closes stdin's writer: client-go's copy of it reads EOF and
		// ends quietly (closing the reader made it log "Copying stdin
		// failed" for every session that ended), and a write blocked on it
		// returns.
		s.end(err)
		_ = outW.CloseWithError(io.EOF)
	}()
	if err := s.started(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// limitedBuffer keeps the first sessionStderrLimit bytes written to it.
type limitedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := sessionStderrLimit - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
