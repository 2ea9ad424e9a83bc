package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nodeconform/nodeconform/framework/probeapi"
	"github.com/nodeconform/nodeconform/framework/procfs"
)

// The kubelet (v1.34 on) takes its cgroup driver from the runtime's CRI
// RuntimeConfig answer when it starts; a runtime whose driver changed
// after that (a config edit and a runtime restart) puts containers where
// the kubelet does not look. Asking the runtime the same question is the
// only runtime-neutral way to see it (containerd and CRI-O keep the
// setting in different files, and the file may not be what runs).
//
// The probe speaks this one unary gRPC call itself, over net/http's
// unencrypted HTTP/2: the request is empty and the answer is two nested
// fields, while a program making this call with grpc-go and the
// generated CRI API (k8s.io/cri-api v0.37.2) alone builds to 10.9 MB,
// against 6.8 MB for the whole probe that every node loads (measured on
// 2026-12-06, -s -w).

// criMethod is the CRI call's gRPC path (k8s.io/cri-api runtime.v1).
const criMethod = "/runtime.v1.RuntimeService/RuntimeConfig"

// grpcUnimplemented is gRPC's status code for a method the server lacks
// (containerd before 2.0).
const grpcUnimplemented = 12

// criRuntimeConfig prints the runtime's answer to CRI RuntimeConfig,
// reached at the kubelet's runtime endpoint as the kubelet sees it (its
// process's root, so a runtime in a private mount namespace is reached
// too).
func criRuntimeConfig(args []string) error {
	fs := flag.NewFlagSet("cri-runtime-config", flag.ExitOnError)
	endpoint := fs.String("endpoint", "unix:///run/containerd/containerd.sock", "the kubelet's containerRuntimeEndpoint")
	timeout := fs.Duration("timeout", 10*time.Second, "give up after")
	_ = fs.Parse(args)
	sock, err := socketPath(*endpoint)
	if err != nil {
		return err
	}
	root := procRoot + "/1/root"
	if ks, _ := procfs.FindByComm(procRoot, "kubelet"); len(ks) > 0 {
		root = fmt.Sprintf("%s/%d/root", procRoot, ks[0].PID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ans, err := callRuntimeConfig(ctx, root+sock)
	if err != nil {
		return fmt.Errorf("CRI RuntimeConfig at %s: %w", *endpoint, err)
	}
	ans.Endpoint = *endpoint
	emit(ans)
	return nil
}

// socketPath is the file of a unix:// CRI endpoint.
func socketPath(endpoint string) (string, error) {
	p, ok := strings.CutPrefix(endpoint, "unix://")
	if !ok {
		if strings.Contains(endpoint, "://") {
			return "", fmt.Errorf("CRI endpoint %q: only unix sockets are supported", endpoint)
		}
		p = endpoint
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("CRI endpoint %q: not an absolute socket path", endpoint)
	}
	return p, nil
}

// callRuntimeConfig makes the gRPC call on the unix socket at sock.
func callRuntimeConfig(ctx context.Context, sock string) (probeapi.RuntimeConfig, error) {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{
		Protocols: &protocols,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	defer client.CloseIdleConnections()
	// An empty request message: no compression flag, length 0.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://localhost"+criMethod, bytes.NewReader(make([]byte, 5)))
	if err != nil {
		return probeapi.RuntimeConfig{}, err
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("TE", "trailers")
	resp, err := client.Do(req)
	if err != nil {
		return probeapi.RuntimeConfig{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return probeapi.RuntimeConfig{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return probeapi.RuntimeConfig{}, fmt.Errorf("HTTP status %s", resp.Status)
	}
	code, message := grpcStatus(resp)
	return parseRuntimeConfigResponse(body, code, message)
}

// grpcStatus reads grpc-status and grpc-message from the trailers, or
// from the headers of a trailers-only answer (how errors come).
func grpcStatus(resp *http.Response) (code, message string) {
	for _, h := range []http.Header{resp.Trailer, resp.Header} {
		if c := h.Get("Grpc-Status"); c != "" {
			return c, h.Get("Grpc-Message")
		}
	}
	return "", ""
}

// parseRuntimeConfigResponse decodes a RuntimeConfig answer: the gRPC
// status and the length-prefixed RuntimeConfigResponse message.
func parseRuntimeConfigResponse(body []byte, code, message string) (probeapi.RuntimeConfig, error) {
	switch code {
	case "0":
	case strconv.Itoa(grpcUnimplemented):
		return probeapi.RuntimeConfig{Unimplemented: true}, nil
	case "":
		return probeapi.RuntimeConfig{}, errors.New("answer without grpc-status")
	default:
		return probeapi.RuntimeConfig{}, fmt.Errorf("gRPC status %s: %s", code, message)
	}
	if len(body) < 5 {
		return probeapi.RuntimeConfig{}, fmt.Errorf("answer of %d bytes, not a gRPC message", len(body))
	}
	if body[0] != 0 {
		return probeapi.RuntimeConfig{}, errors.New("compressed gRPC answer (none was offered)")
	}
	n := binary.BigEndian.Uint32(body[1:5])
	if int(n) != len(body)-5 {
		return probeapi.RuntimeConfig{}, fmt.Errorf("gRPC message of %d bytes announced, %d received", n, len(body)-5)
	}
	return decodeRuntimeConfig(body[5:])
}

// cgroupDrivers are the CRI CgroupDriver enum's names by number.
var cgroupDrivers = map[uint64]string{0: "systemd", 1: "cgroupfs"}

// decodeRuntimeConfig reads RuntimeConfigResponse{linux (1):
// LinuxRuntimeConfiguration{cgroup_driver (1): enum}}. Proto3 leaves out
// a zero enum, so a present but empty linux is systemd; an absent linux
// says nothing (the kubelet then keeps its configured driver).
func decodeRuntimeConfig(msg []byte) (probeapi.RuntimeConfig, error) {
	var out probeapi.RuntimeConfig
	linux, found, err := protoField(msg, 1, 2)
	if err != nil || !found {
		return out, err
	}
	out.Linux = true
	out.CgroupDriver = cgroupDrivers[0]
	if v, found, err := protoVarint(linux, 1); err != nil {
		return out, err
	} else if found {
		d, ok := cgroupDrivers[v]
		if !ok {
			return out, fmt.Errorf("unknown cgroup driver %d", v)
		}
		out.CgroupDriver = d
	}
	return out, nil
}

// protoField returns the last length-delimited field num of msg (wire
// type 2), skipping every other field.
func protoField(msg []byte, num uint64, wire uint64) ([]byte, bool, error) {
	var val []byte
	found := false
	err := protoWalk(msg, func(n, w uint64, v uint64, b []byte) {
		if n == num && w == wire {
			val, found = b, true
		}
	})
	return val, found, err
}

// protoVarint returns the last varint field num of msg.
func protoVarint(msg []byte, num uint64) (uint64, bool, error) {
	var val uint64
	found := false
	err := protoWalk(msg, func(n, w uint64, v uint64, _ []byte) {
		if n == num && w == 0 {
			val, found = v, true
		}
	})
	return val, found, err
}

// protoWalk calls f for each field of a protobuf message: its number,
// wire type, and value (varint) or bytes (length-delimited).
func protoWalk(msg []byte, f func(num, wire, v uint64, b []byte)) error {
	for len(msg) > 0 {
		key, n := binary.Uvarint(msg)
		if n <= 0 {
			return errors.New("malformed protobuf field key")
		}
		msg = msg[n:]
		num, wire := key>>3, key&7
		switch wire {
		case 0:
			v, n := binary.Uvarint(msg)
			if n <= 0 {
				return errors.New("malformed protobuf varint")
			}
			msg = msg[n:]
			f(num, wire, v, nil)
		case 1:
			if len(msg) < 8 {
				return errors.New("truncated protobuf fixed64")
			}
			msg = msg[8:]
		case 2:
			l, n := binary.Uvarint(msg)
			if n <= 0 || uint64(len(msg)-n) < l {
				return errors.New("truncated protobuf bytes")
			}
			f(num, wire, 0, msg[n:n+int(l)])
			msg = msg[n+int(l):]
		case 5:
			if len(msg) < 4 {
				return errors.New("truncated protobuf fixed32")
			}
			msg = msg[4:]
		default:
			return fmt.Errorf("protobuf wire type %d not supported", wire)
		}
	}
	return nil
}
