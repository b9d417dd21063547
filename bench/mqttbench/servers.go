package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// server is a broker process under test.
type server struct {
	name string
	addr string
	cmd  *exec.Cmd
	// subscriber credentials: the hub's application authenticates with a
	// token in CONNECT; Mosquitto requires a certificate of every client.
	subUser, subPass string
	subCert          bool
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// rss is the broker process's resident memory (VmRSS) in bytes.
func (s *server) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", s.pid())
}

// cpuTime is the process's user+system CPU so far.
func (s *server) cpuTime() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.pid()))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// hubNoTelemetry runs the hub without telemetry storage, to attribute its
// cost (-hub-no-telemetry); the table is then not the hub as shipped.
var hubNoTelemetry bool

const appToken = "rpt_bench_token_not_a_secret_elsewhere"

// startHub runs this binary as the hub (see hub.go) and waits for "ready".
func startHub(dir, profile string) (*server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"hub", "-dir", dir, "-token", appToken}
	if profile != "" {
		args = append(args, "-profile", profile)
	}
	if hubNoTelemetry {
		args = append(args, "-store=false")
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("hub did not start: %q %v", line, err)
	}
	return &server{name: "hub", addr: strings.TrimSpace(strings.TrimPrefix(line, "ready ")), cmd: cmd, subUser: "app", subPass: appToken}, nil
}

// mosquittoConf: the same policy as the hub's. Client certificates from the
// bench CA are required and name the client (use_identity_as_username);
// the client ID is forced to that name (the hub binds the client ID to the
// device ID); a device writes only below its own devices/ID/ subtree and
// reads only its commands; the application reads devices/#.
const mosquittoConf = `# written by mqttbench
per_listener_settings false
allow_anonymous false
persistence false
log_dest stderr
log_type error
user %s
listener %d 127.0.0.1
cafile %s/ca.pem
certfile %s/server.pem
keyfile %s/server.key
tls_version tlsv1.3
require_certificate true
use_identity_as_username true
use_username_as_clientid true
set_tcp_nodelay true
max_packet_size 262144
max_inflight_messages 64
max_queued_messages 1024
max_keepalive 1200
acl_file %s/mosquitto.acl
`

const mosquittoACL = `pattern write devices/%c/telemetry/#
pattern write devices/%c/events/#
pattern write devices/%c/state/#
pattern read devices/%c/commands
user app
topic read devices/#
`

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func startMosquitto(bin, dir string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(mosquittoConf, u.Username, port, dir, dir, dir, dir)), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "mosquitto.acl"), []byte(mosquittoACL), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stderr = quietMosquitto{}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{name: "mosquitto", addr: fmt.Sprintf("127.0.0.1:%d", port), cmd: cmd, subCert: true}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", s.addr); err == nil {
			c.Close()
			return s, nil
		}
	}
	s.stop()
	return nil, fmt.Errorf("mosquitto did not listen on %s", s.addr)
}

// quietMosquitto passes Mosquitto's log to stderr without the lines that
// every run produces: clients that close without TLS close_notify (the
// bench tears connections down), and the warning about running as root.
type quietMosquitto struct{}

func (quietMosquitto) Write(p []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if line == "" || strings.Contains(line, "unexpected eof while reading") || strings.Contains(line, "should not be run as root") {
			continue
		}
		os.Stderr.WriteString(line)
	}
	return len(p), nil
}
