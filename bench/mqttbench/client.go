package main

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// conn is a minimal MQTT 3.1.1 client: just enough for the workloads, and
// cheap, so that the load generator leaves the CPU to the broker.
type conn struct {
	c   *tls.Conn
	r   *bufio.Reader
	wmu sync.Mutex
}

// localAddrs spreads client connections over loopback source addresses so
// that tens of thousands of connections (and their TIME_WAITs) never run
// out of ports.
var (
	localMu   sync.Mutex
	localNext int
)

const localSpread = 200

func nextLocal() *net.TCPAddr {
	localMu.Lock()
	defer localMu.Unlock()
	localNext++
	return &net.TCPAddr{IP: net.IPv4(127, 0, 1, 1+byte(localNext%localSpread))}
}

// dial connects, completes TLS and CONNECT/CONNACK.
func dial(addr string, cfg *tls.Config, clientID, user, pass string, keepalive uint16) (*conn, error) {
	d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: nextLocal()}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	raw.(*net.TCPConn).SetNoDelay(true)
	tc := tls.Client(raw, cfg)
	_ = tc.SetDeadline(time.Now().Add(15 * time.Second))
	if err := tc.Handshake(); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	c := &conn{c: tc, r: bufio.NewReaderSize(tc, 16<<10)}
	if err := c.connect(clientID, user, pass, keepalive); err != nil {
		tc.Close()
		return nil, err
	}
	_ = tc.SetDeadline(time.Time{})
	return c, nil
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendLen(b []byte, n int) []byte {
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if n == 0 {
			return b
		}
	}
}

func packet(typ byte, body []byte) []byte {
	b := make([]byte, 0, len(body)+5)
	b = append(b, typ)
	b = appendLen(b, len(body))
	return append(b, body...)
}

func (c *conn) connect(clientID, user, pass string, keepalive uint16) error {
	flags := byte(0x02) // clean session
	if user != "" {
		flags |= 0x80 | 0x40
	}
	body := appendStr(nil, "MQTT")
	body = append(body, 4, flags)
	body = binary.BigEndian.AppendUint16(body, keepalive)
	body = appendStr(body, clientID)
	if user != "" {
		body = appendStr(body, user)
		body = appendStr(body, pass)
	}
	if err := c.write(packet(0x10, body)); err != nil {
		return err
	}
	typ, p, err := c.read()
	if err != nil {
		return fmt.Errorf("reading CONNACK: %w", err)
	}
	if typ>>4 != 2 || len(p) != 2 || p[1] != 0 {
		return fmt.Errorf("CONNACK refused: type %d %x", typ>>4, p)
	}
	return nil
}

func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.c.Write(b)
	return err
}

// read returns one packet: its first byte and its body.
func (c *conn) read() (byte, []byte, error) {
	typ, err := c.r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		d, err := c.r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(d&0x7f) * mul
		mul *= 128
		if d&0x80 == 0 {
			break
		}
		if i == 3 {
			return 0, nil, errors.New("bad remaining length")
		}
	}
	body := make([]byte, n)
	_, err = io.ReadFull(c.r, body)
	return typ, body, err
}

func (c *conn) subscribe(filter string, qos byte) error {
	body := binary.BigEndian.AppendUint16(nil, 1)
	body = appendStr(body, filter)
	body = append(body, qos)
	if err := c.write(packet(0x82, body)); err != nil {
		return err
	}
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.c.SetReadDeadline(time.Time{})
	var typ byte
	var p []byte
	for typ>>4 != 9 { // messages still in flight from an earlier phase may come first
		var err error
		if typ, p, err = c.read(); err != nil {
			return err
		}
	}
	if typ>>4 != 9 || len(p) < 3 || p[2] >= 0x80 {
		return fmt.Errorf("subscription to %s refused: %x", filter, p)
	}
	return nil
}

// publishPacket builds a PUBLISH.
func publishPacket(topic string, qos byte, id uint16, payload []byte) []byte {
	body := appendStr(make([]byte, 0, len(topic)+len(payload)+4), topic)
	if qos > 0 {
		body = binary.BigEndian.AppendUint16(body, id)
	}
	body = append(body, payload...)
	return packet(0x30|qos<<1, body)
}

func (c *conn) disconnect() {
	_ = c.c.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.write([]byte{0xE0, 0})
	c.c.Close()
}

// stamp writes the send time into the first 8 bytes of a payload.
func stamp(p []byte) {
	binary.BigEndian.PutUint64(p, uint64(time.Now().UnixNano()))
}

// parsePublish returns the payload of a PUBLISH body and its packet ID.
func parsePublish(typ byte, body []byte) (payload []byte, id uint16, ok bool) {
	if len(body) < 2 {
		return nil, 0, false
	}
	tl := int(binary.BigEndian.Uint16(body))
	rest := body[2:]
	if len(rest) < tl {
		return nil, 0, false
	}
	rest = rest[tl:]
	if (typ>>1)&3 > 0 {
		if len(rest) < 2 {
			return nil, 0, false
		}
		id = binary.BigEndian.Uint16(rest)
		rest = rest[2:]
	}
	return rest, id, true
}
