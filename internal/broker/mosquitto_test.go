package broker

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampart-iot/rampart/internal/testkit"
)

// The stock Mosquitto clients interoperate with the hub (MQTT 3.1.1 and 5,
// QoS 0-2, retained), and the ACL holds for them too.
func TestMosquittoClients(t *testing.T) {
	pub := testkit.NeedTool(t, "mosquitto_pub")
	sub := testkit.NeedTool(t, "mosquitto_sub")
	e := newEnv(t, Limits{})
	dir := t.TempDir()
	caPath := filepath.Join(dir, "ca.pem")
	os.WriteFile(caPath, e.serverCA.PEM, 0o600)
	leaf := e.device("dev1", "tenantA")
	certPath, keyPath := leaf.WriteFiles(t, dir, "dev1")
	e.app("app1", "tenantA", "tokA")
	host, port, _ := strings.Cut(e.addr, ":")
	common := []string{"-h", host, "-p", port, "--cafile", caPath}

	for _, v := range []string{"mqttv311", "mqttv5"} {
		for _, qos := range []string{"0", "1", "2"} {
			t.Run(v+"/qos"+qos, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				topic := "devices/dev1/telemetry/" + v + qos
				s := exec.CommandContext(ctx, sub, append(common, "-V", v, "-i", "app1", "-u", "app1", "-P", "tokA", "-t", topic, "-q", qos, "-C", "1", "-W", "10")...)
				out := &strings.Builder{}
				s.Stdout, s.Stderr = out, out
				if err := s.Start(); err != nil {
					t.Fatal(err)
				}
				time.Sleep(300 * time.Millisecond) // let the subscription land
				p := exec.CommandContext(ctx, pub, append(common, "-V", v, "-i", "dev1", "--cert", certPath, "--key", keyPath, "-t", topic, "-q", qos, "-m", `{"t":21}`)...)
				if b, err := p.CombinedOutput(); err != nil {
					t.Fatalf("mosquitto_pub: %v %s", err, b)
				}
				if err := s.Wait(); err != nil || strings.TrimSpace(out.String()) != `{"t":21}` {
					t.Fatalf("mosquitto_sub: %v %q", err, out.String())
				}
			})
		}
	}
	t.Run("fail/publish to another device's topic is refused", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		p := exec.CommandContext(ctx, pub, append(common, "-V", "mqttv5", "-i", "dev1", "--cert", certPath, "--key", keyPath, "-t", "devices/dev2/telemetry/x", "-q", "1", "-m", "x")...)
		b, err := p.CombinedOutput()
		if err == nil && !strings.Contains(string(b), "not authorized") {
			t.Fatalf("mosquitto_pub to another device's topic succeeded: %s", b)
		}
	})
	t.Run("fail/no client certificate", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		p := exec.CommandContext(ctx, pub, append(common, "-i", "dev1", "-t", "devices/dev1/telemetry/x", "-m", "x")...)
		if b, err := p.CombinedOutput(); err == nil {
			t.Fatalf("mosquitto_pub without a certificate succeeded: %s", b)
		}
	})
}
