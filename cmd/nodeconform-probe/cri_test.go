package main

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodeconform/nodeconform/framework/probeapi"
)

func TestDecodeRuntimeConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		msg  []byte
		want probeapi.RuntimeConfig
		err  bool
	}{
		{"no linux: the runtime said nothing", nil, probeapi.RuntimeConfig{}, false},
		// proto3 leaves out the zero enum: an empty linux is systemd.
		{"empty linux is systemd", []byte{0x0a, 0x00}, probeapi.RuntimeConfig{Linux: true, CgroupDriver: "systemd"}, false},
		{"cgroupfs", []byte{0x0a, 0x02, 0x08, 0x01}, probeapi.RuntimeConfig{Linux: true, CgroupDriver: "cgroupfs"}, false},
		{"explicit systemd", []byte{0x0a, 0x02, 0x08, 0x00}, probeapi.RuntimeConfig{Linux: true, CgroupDriver: "systemd"}, false},
		// Fields a later CRI adds are skipped.
		{"unknown fields", []byte{0x10, 0x05, 0x0a, 0x05, 0x12, 0x01, 0x78, 0x08, 0x01}, probeapi.RuntimeConfig{Linux: true, CgroupDriver: "cgroupfs"}, false},
		{"unknown driver", []byte{0x0a, 0x02, 0x08, 0x07}, probeapi.RuntimeConfig{}, true},
		{"truncated", []byte{0x0a, 0x05, 0x08}, probeapi.RuntimeConfig{}, true},
	} {
		got, err := decodeRuntimeConfig(c.msg)
		if (err != nil) != c.err {
			t.Errorf("%s: error %v", c.name, err)
			continue
		}
		if !c.err && got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestParseRuntimeConfigResponse(t *testing.T) {
	frame := func(msg []byte) []byte {
		b := make([]byte, 5+len(msg))
		binary.BigEndian.PutUint32(b[1:5], uint32(len(msg)))
		copy(b[5:], msg)
		return b
	}
	if got, err := parseRuntimeConfigResponse(nil, "12", "unknown method RuntimeConfig"); err != nil || !got.Unimplemented {
		t.Errorf("unimplemented: %+v, %v", got, err)
	}
	if _, err := parseRuntimeConfigResponse(nil, "14", "connection refused"); err == nil {
		t.Error("unavailable: no error")
	}
	if _, err := parseRuntimeConfigResponse(frame([]byte{0x0a, 0x00}), "", ""); err == nil {
		t.Error("no grpc-status: no error")
	}
	if _, err := parseRuntimeConfigResponse(frame([]byte{0x0a, 0x00})[:6], "0", ""); err == nil {
		t.Error("short message: no error")
	}
	if got, err := parseRuntimeConfigResponse(frame([]byte{0x0a, 0x02, 0x08, 0x01}), "0", ""); err != nil || got.CgroupDriver != "cgroupfs" {
		t.Errorf("cgroupfs: %+v, %v", got, err)
	}
}

// TestCallRuntimeConfig speaks to a server answering like grpc-go over
// HTTP/2 without TLS on a unix socket: an answer in trailers and a
// trailers-only error.
func TestCallRuntimeConfig(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var unimplemented atomic.Bool
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protocols, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 || r.URL.Path != criMethod || r.Header.Get("Content-Type") != "application/grpc" || r.Header.Get("Te") != "trailers" {
			http.Error(w, "not a gRPC call: "+r.Proto+" "+r.URL.Path, http.StatusBadRequest)
			return
		}
		if req, _ := io.ReadAll(r.Body); len(req) != 5 {
			http.Error(w, "request is not one empty message", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/grpc")
		if unimplemented.Load() {
			w.Header().Set("Grpc-Status", "12")
			w.Header().Set("Grpc-Message", "unknown method RuntimeConfig for service runtime.v1.RuntimeService")
			w.WriteHeader(http.StatusOK)
			return
		}
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
		_, _ = w.Write([]byte{0, 0, 0, 0, 4, 0x0a, 0x02, 0x08, 0x01})
		w.Header().Set("Grpc-Status", "0")
	})}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := callRuntimeConfig(ctx, sock)
	if err != nil || got.CgroupDriver != "cgroupfs" || !got.Linux {
		t.Fatalf("answer in trailers: %+v, %v", got, err)
	}
	unimplemented.Store(true)
	got, err = callRuntimeConfig(ctx, sock)
	if err != nil || !got.Unimplemented {
		t.Fatalf("trailers-only error: %+v, %v", got, err)
	}
	if _, err := callRuntimeConfig(ctx, filepath.Join(t.TempDir(), "none.sock")); err == nil {
		t.Fatal("no socket: no error")
	}
}

func TestSocketPath(t *testing.T) {
	for in, want := range map[string]string{"unix:///run/containerd/containerd.sock": "/run/containerd/containerd.sock", "/var/run/crio/crio.sock": "/var/run/crio/crio.sock"} {
		if got, err := socketPath(in); err != nil || got != want {
			t.Errorf("%s: %s, %v", in, got, err)
		}
	}
	for _, bad := range []string{"tcp://10.0.0.1:1234", "unix://run/x.sock", "npipe:////./pipe/x"} {
		if _, err := socketPath(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
