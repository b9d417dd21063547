package broker

import (
	"testing"
	"time"
)

// FuzzPacketsAfterConnect sends arbitrary bytes from an authenticated
// device after a valid TLS handshake and CONNECT (MQTT 5 or 3.1.1). Whatever
// they are, the hub must survive and keep serving: after each input a
// second device must still connect.
func FuzzPacketsAfterConnect(f *testing.F) {
	e := newEnv(f, Limits{FlapMaxConnects: 1 << 30, NewConnsPerIPPerSec: 1e6, NewConnsBurst: 1 << 20, MaxConnsPerIP: 1 << 20,
		HandshakeTimeout: 2 * time.Second, ConnectTimeout: 2 * time.Second})
	fuzzer := e.device("fuzzer", "t")
	probe := e.device("probe", "t")
	filter := "devices/fuzzer/commands"
	truncSub := append([]byte{0x82, byte(5 + len(filter)), 0, 1, 0, 0, byte(len(filter))}, filter...)
	for _, seed := range [][]byte{
		truncSub,
		{0x30, 0x80, 0x84, 0xAF, 0x5F, 0, 1, 'x'},                  // 200 MB length claim
		{0x30, 0x0c, 0, 7, 'd', 'e', 'v', 'i', 'c', 'e', 's', 'x'}, // short publish
		{0x82, 0x02, 0x00},             // subscribe without filter
		{0xc0, 0x00},                   // pingreq
		{0xe0, 0x00},                   // disconnect
		{0x10, 0x00},                   // second CONNECT
		{0xff, 0xff, 0xff, 0xff, 0xff}, // bad varint
		{0x62, 0x02, 0x00, 0x01},       // pubrel
		{0xa2, 0x03, 0x00, 0x02, 0x00}, // unsubscribe, empty
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, v5 bool) {
		if len(data) > 4096 {
			data = data[:4096]
		}
		ver := byte(4)
		if v5 {
			ver = 5
		}
		r := e.rawFor(t, &fuzzer.TLS)
		if code := r.connack(connectPacket(ver, "fuzzer")); code != 0 {
			t.Fatalf("fuzzer refused: 0x%x", code)
		}
		r.c.Write(data)
		r.c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		buf := make([]byte, 4096)
		for {
			if _, err := r.c.Read(buf); err != nil {
				break
			}
		}
		r.c.Close()
		p := e.rawFor(t, &probe.TLS)
		if code := p.connack(connectPacket(5, "probe")); code != 0 {
			t.Fatalf("after input %x the hub refused a healthy device: 0x%x", data, code)
		}
		p.c.Close()
	})
}
