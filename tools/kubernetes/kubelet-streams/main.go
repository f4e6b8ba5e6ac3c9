// kubelet-streams serves the fake kubelet's exec, attach and port-forward endpoints with the
// kubelet's own streaming code (k8s.io/cri-streaming, what container runtimes serve): SPDY/3.1
// (what the API server speaks to a kubelet, translating its clients' WebSocket streams since
// Kubernetes 1.30) and WebSocket (what it forwards as is from older releases).
//
// The fake kubelet (tools/fake-kubelet) starts it inside the node's network namespace and hands
// it each streaming request on the Unix socket --socket, after it has checked the pod and added
// the header X-Fake-Kubelet-Spec: base64 of a JSON object
//
//	{"podIP": "198.18.0.7", "env": {"NAME": "value", ...}, "logFile": "/path/or/empty"}
//
// "The container" is this machine: an exec runs the command as a process with the container's
// environment (env, plus PATH), in the node's network namespace (inherited), on a pseudo
// terminal when the client asks for a TTY; a port-forward dials podIP:port; an attach follows
// the container's log file (logFile) and discards what the client types. Nothing it handles is
// logged: the spec carries the container's environment, which may hold secret values.
//
// Paths, as a kubelet serves them: /exec/NS/POD/CONTAINER (also /exec/NS/POD/UID/CONTAINER),
// /attach/NS/POD/CONTAINER, /portForward/NS/POD (also /portforward/); query as the kubelet's.
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/creack/pty"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// SpecHeader is the header the fake kubelet adds to each request it hands over.
const SpecHeader = "X-Fake-Kubelet-Spec"

const (
	// A kubelet's --streaming-connection-idle-timeout defaults to 4 h; streams here serve tests
	// and the demo, so an idle one ends sooner.
	idleTimeout = 10 * time.Minute
	// An exec lasts at most this long; its process is killed then.
	maxSession = time.Hour
	// How long an exec's output may outlive its process (a background child holding stdout).
	outputGrace = 2 * time.Second
	dialTimeout = 5 * time.Second
	// The PATH of an exec, as an image's default.
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// spec is what the fake kubelet knows about the pod and container of a request.
type spec struct {
	PodIP   string            `json:"podIP"`
	Env     map[string]string `json:"env"`
	LogFile string            `json:"logFile"`
}

func main() {
	socket := flag.String("socket", "", "the Unix socket to serve on (required)")
	flag.Parse()
	if *socket == "" {
		fmt.Fprintln(os.Stderr, "kubelet-streams: --socket is required")
		os.Exit(2)
	}
	_ = os.Remove(*socket)
	listener, err := net.Listen("unix", *socket)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-streams: listening on %s: %v\n", *socket, err)
		os.Exit(1)
	}
	if err := os.Chmod(*socket, 0o600); err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-streams: %v\n", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr, "kubelet-streams: ready")
	server := &http.Server{Handler: http.HandlerFunc(serve), ReadHeaderTimeout: 10 * time.Second}
	if err := server.Serve(listener); err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-streams: %v\n", err)
		os.Exit(1)
	}
}

// serve routes one request by its path.
func serve(w http.ResponseWriter, req *http.Request) {
	s, err := readSpec(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	parts := strings.Split(strings.TrimPrefix(req.URL.Path, "/"), "/")
	switch {
	case parts[0] == "exec" && (len(parts) == 4 || len(parts) == 5):
		serveExec(w, req, s, parts[2], parts[len(parts)-1])
	case parts[0] == "attach" && (len(parts) == 4 || len(parts) == 5):
		serveAttach(w, req, s, parts[2], parts[len(parts)-1])
	case (parts[0] == "portForward" || parts[0] == "portforward") && len(parts) >= 3:
		servePortForward(w, req, s, parts[2])
	default:
		http.NotFound(w, req)
	}
}

func readSpec(req *http.Request) (spec, error) {
	var s spec
	raw := req.Header.Get(SpecHeader)
	if raw == "" {
		return s, fmt.Errorf("no %s header: requests come through the fake kubelet", SpecHeader)
	}
	text, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return s, fmt.Errorf("%s: %v", SpecHeader, err)
	}
	if err := json.Unmarshal(text, &s); err != nil {
		return s, fmt.Errorf("%s: %v", SpecHeader, err)
	}
	req.Header.Del(SpecHeader)
	return s, nil
}

func serveExec(w http.ResponseWriter, req *http.Request, s spec, pod, container string) {
	opts, err := remotecommand.NewOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd := req.URL.Query()["command"]
	remotecommand.ServeExec(w, req, executor{s}, pod, "", container, cmd, opts,
		idleTimeout, remotecommand.DefaultStreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func serveAttach(w http.ResponseWriter, req *http.Request, s spec, pod, container string) {
	opts, err := remotecommand.NewOptions(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	remotecommand.ServeAttach(w, req, attacher{s}, pod, "", container, opts,
		idleTimeout, remotecommand.DefaultStreamCreationTimeout, remotecommand.SupportedStreamingProtocols)
}

func servePortForward(w http.ResponseWriter, req *http.Request, s spec, pod string) {
	opts, err := portforward.NewV4Options(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	portforward.ServePortForward(w, req, forwarder{s}, pod, "", opts,
		idleTimeout, remotecommand.DefaultStreamCreationTimeout, portforward.SupportedProtocols)
}

// executor runs an exec's command on this machine with the container's environment.
type executor struct{ spec }

func (e executor) ExecInContainer(ctx context.Context, _, _, _ string, argv []string,
	in io.Reader, out, errOut io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize,
	_ time.Duration) error {
	if len(argv) == 0 {
		return errors.New("no command")
	}
	ctx, cancel := context.WithTimeout(ctx, maxSession)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=" + defaultPath}
	for name, value := range e.Env {
		cmd.Env = append(cmd.Env, name+"="+value)
	}
	cmd.WaitDelay = outputGrace
	if tty {
		return runOnTerminal(cmd, in, out, resize)
	}
	return runPiped(cmd, in, out, errOut)
}

// runPiped runs cmd with the stream's stdin (if any), stdout and stderr.
func runPiped(cmd *exec.Cmd, in io.Reader, out, errOut io.WriteCloser) error {
	if out != nil {
		cmd.Stdout = out
	}
	if errOut != nil {
		cmd.Stderr = errOut
	}
	var stdin io.WriteCloser
	if in != nil {
		pipe, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		stdin = pipe
	}
	if err := cmd.Start(); err != nil {
		return exitError(err)
	}
	if stdin != nil {
		go func() {
			_, _ = io.Copy(stdin, in)
			_ = stdin.Close()
		}()
	}
	return exitError(cmd.Wait())
}

// runOnTerminal runs cmd on a new pseudo terminal, its size following the client's.
func runOnTerminal(cmd *exec.Cmd, in io.Reader, out io.WriteCloser, resize <-chan remotecommand.TerminalSize) error {
	terminal, err := pty.Start(cmd)
	if err != nil {
		return exitError(err)
	}
	defer terminal.Close()
	go func() {
		for size := range resize {
			_ = pty.Setsize(terminal, &pty.Winsize{Rows: size.Height, Cols: size.Width})
		}
	}()
	if in != nil {
		go func() { _, _ = io.Copy(terminal, in) }()
	}
	copied := make(chan struct{})
	go func() {
		if out != nil {
			_, _ = io.Copy(out, terminal) // ends with EIO once the process and its children exit
		} else {
			_, _ = io.Copy(io.Discard, terminal)
		}
		close(copied)
	}()
	waitErr := cmd.Wait()
	select {
	case <-copied:
	case <-time.After(outputGrace):
	}
	return exitError(waitErr)
}

// exitError turns a process's exit status into the error ServeExec reports as an exit code
// (127 when the command cannot be started, as a shell says).
func exitError(err error) error {
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exitErr):
		if exitErr.Exited() {
			return utilexec.CodeExitError{Err: err, Code: exitErr.ExitCode()}
		}
		return err
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, os.ErrNotExist):
		return utilexec.CodeExitError{Err: err, Code: 127}
	default:
		return err
	}
}

// attacher follows the container's log file, as its output; input is read and dropped.
type attacher struct{ spec }

func (a attacher) AttachContainer(ctx context.Context, _, _, _ string, in io.Reader,
	out, _ io.WriteCloser, _ bool, _ <-chan remotecommand.TerminalSize) error {
	if in != nil {
		go func() { _, _ = io.Copy(io.Discard, in) }()
	}
	if a.LogFile == "" || out == nil {
		<-ctx.Done()
		return nil
	}
	file, err := os.Open(a.LogFile)
	if err != nil {
		return err
	}
	defer file.Close()
	if _, err := file.Seek(0, io.SeekEnd); err != nil {
		return err
	}
	ticker := time.NewTicker(200 * time.Millisecond)
	defer ticker.Stop()
	for {
		if _, err := io.Copy(out, file); err != nil {
			return nil // the client went away
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// forwarder connects a port-forward stream to the pod's port.
type forwarder struct{ spec }

func (f forwarder) PortForward(ctx context.Context, _, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	address := net.JoinHostPort(f.PodIP, fmt.Sprint(port))
	conn, err := (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, "tcp", address)
	if err != nil {
		return fmt.Errorf("connecting to %s: %v", address, err)
	}
	defer conn.Close()
	go func() {
		_, _ = io.Copy(conn, stream)
		if tcp, ok := conn.(*net.TCPConn); ok {
			_ = tcp.CloseWrite() // the client is done sending; the server may still answer
		}
	}()
	// The forward ends when the pod's side closes (or the client goes away, failing the copy).
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(stream, conn)
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}
