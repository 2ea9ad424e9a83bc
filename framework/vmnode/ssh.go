package vmnode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshClient runs commands on the VM as root. The guest's host key is the
// one recorded when its disk was built, so nothing else on the bridge can
// stand in for it.
type sshClient struct {
	addr string
	cfg  *ssh.ClientConfig
}

func newSSH(addr, keyFile, hostKey string) (*sshClient, error) {
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("VM ssh key %s: %w", keyFile, err)
	}
	hk, _, _, _, err := ssh.ParseAuthorizedKey([]byte(hostKey))
	if err != nil {
		return nil, fmt.Errorf("VM host key: %w", err)
	}
	return &sshClient{addr: net.JoinHostPort(addr, "22"), cfg: &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(hk),
		// Ask for the recorded key's type: sshd offers several.
		HostKeyAlgorithms: []string{hk.Type()},
		Timeout:           10 * time.Second,
	}}, nil
}

// Run runs a shell command with stdin (may be nil) and returns its
// combined output; the error carries the output.
func (c *sshClient) Run(ctx context.Context, cmd string, stdin io.Reader) (string, error) {
	d := net.Dialer{Timeout: c.cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return "", err
	}
	// The handshake gets the dial's time limit too (a guest that accepts
	// TCP but whose sshd stalls), and ends with ctx (Ctrl-C).
	_ = conn.SetDeadline(time.Now().Add(c.cfg.Timeout))
	stopWatch := context.AfterFunc(ctx, func() { conn.Close() })
	defer stopWatch()
	sc, chans, reqs, err := ssh.NewClientConn(conn, c.addr, c.cfg)
	if err != nil {
		conn.Close()
		return "", err
	}
	_ = conn.SetDeadline(time.Time{})
	client := ssh.NewClient(sc, chans, reqs)
	defer client.Close()
	s, err := client.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	// Stdout and stderr are copied by goroutines of their own: one
	// buffer needs a lock (unguarded, output was lost).
	var out lockedBuffer
	s.Stdout, s.Stderr, s.Stdin = &out, &out, stdin
	done := make(chan error, 1)
	go func() { done <- s.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		client.Close()
		err = ctx.Err()
	}
	if err != nil {
		return out.String(), fmt.Errorf("on the VM: %s: %w\n%s", cmd, err, tail(out.String(), 3000))
	}
	return out.String(), nil
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}
