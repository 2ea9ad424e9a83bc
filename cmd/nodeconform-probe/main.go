// Command nodeconform-probe is the one binary nodeconform runs inside
// clusters: the workload of test pods (serve, sleep) and the client the
// framework execs to observe from inside a pod (get, lookup). Every
// observation is printed as one JSON object so specs never parse free text.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nodeconform/nodeconform/framework/probeapi"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(os.Args[2:])
	case "get":
		err = get(os.Args[2:])
	case "lookup":
		err = lookup(os.Args[2:])
	case "ns":
		err = ns(os.Args[2:])
	case "mounts":
		err = mounts(os.Args[2:])
	case "mount-tmpfs":
		err = mountTmpfs(os.Args[2:])
	case "host":
		err = host(os.Args[2:])
	case "read":
		err = readFile(os.Args[2:])
	case "read-all":
		err = readFiles(os.Args[2:])
	case "report-sleep":
		reportThenSleep(os.Args[2:])
	case "burn":
		burn(os.Args[2:])
	case "wake":
		err = wake()
	case "alloc":
		err = alloc(os.Args[2:])
	case "cgroup-of":
		err = cgroupOf(os.Args[2:])
	case "cri-runtime-config":
		err = criRuntimeConfig(os.Args[2:])
	case "nft-table":
		err = nftTable(os.Args[2:])
	case "sleep":
		sleep()
	case "session":
		err = serveSession()
	default:
		usage()
	}
	if err != nil {
		emit(probeapi.Error{Error: err.Error()})
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: nodeconform-probe COMMAND
  serve [--port N]            answer HTTP with who answered
  get URL [--timeout D]       fetch URL, print status and who answered
  lookup NAME [--timeout D]   resolve NAME
  ns [--pid P|self] [--comm NAME]   namespaces of processes
  mounts [--pid P|self]       parsed mountinfo of a process
  mount-tmpfs PATH            mount a small tmpfs at PATH
  host -- CMD [ARGS]          run CMD in the node's namespaces (hostPID, privileged)
  read PATH                   print a file
  read-all PATH...            print several files (one exec, not one each)
  report-sleep PATH...        read-all at start (its answer or error is the log's
                              first line), then sleep: read from the pod's log
  burn [--on-signal]          spin one CPU (throttling load); first wait for SIGUSR1
  wake                        send SIGUSR1 to PID 1 (starts a burn --on-signal)
  alloc [--mib N]             allocate and hold N MiB (OOM load)
  cgroup-of --container ID    /proc/<pid>/cgroup of a process of that container (hostPID)
  cri-runtime-config [--endpoint unix:///PATH]   the runtime's CRI RuntimeConfig (cgroup driver)
  nft-table [--family ip|ip6] [--table NAME] [--map NAME]...
                              an nftables table's chains and maps, from the node's
                              kernel (PID 1's network namespace)
  sleep                       wait for SIGTERM
  session                     run requests read from stdin, one JSON line each, as
                              these commands, and print each reply as one line
                              (one exec per node for a whole run)`)
	os.Exit(2)
}

// sleep waits for SIGTERM or SIGINT.
func sleep() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
}

// reportThenSleep prints what read-all would, then sleeps even when a read
// failed: the framework reads the answer from the container's log, which
// saves an exec per pod (a fraction of a second to seconds per exec on
// slow or emulated nodes), and a container that exited would restart and
// print again.
func reportThenSleep(paths []string) {
	if err := readFiles(paths); err != nil {
		emit(probeapi.Error{Error: err.Error()})
	}
	sleep()
}

func emit(v any) {
	_ = json.NewEncoder(os.Stdout).Encode(v)
}

// serve answers every HTTP request with who answered, so a client can tell
// which pod a Service routed it to.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	port := fs.Int("port", 8080, "TCP port")
	_ = fs.Parse(args)
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"hostname": host, "remote": r.RemoteAddr})
	})
	srv := &http.Server{Addr: fmt.Sprintf(":%d", *port), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); _ = srv.Close() }()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		return err
	}
	return nil
}

func get(args []string) error {
	if len(args) < 1 {
		usage()
	}
	fs := flag.NewFlagSet("get", flag.ExitOnError)
	timeout := fs.Duration("timeout", 5*time.Second, "request timeout")
	_ = fs.Parse(args[1:])
	c := &http.Client{Timeout: *timeout}
	start := time.Now()
	resp, err := c.Get(args[0])
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	res := probeapi.Get{URL: args[0], Status: resp.StatusCode, Millis: time.Since(start).Milliseconds()}
	var who map[string]string
	if json.Unmarshal(body, &who) == nil {
		res.Hostname, res.Remote = who["hostname"], who["remote"]
	}
	emit(res)
	return nil
}

func lookup(args []string) error {
	if len(args) < 1 {
		usage()
	}
	fs := flag.NewFlagSet("lookup", flag.ExitOnError)
	timeout := fs.Duration("timeout", 5*time.Second, "lookup timeout")
	_ = fs.Parse(args[1:])
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, args[0])
	if err != nil {
		return err
	}
	emit(probeapi.Lookup{Name: args[0], Addresses: addrs})
	return nil
}
