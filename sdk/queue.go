package sdk

import "sync"

// message is one queued publication.
type message struct {
	seq     uint64
	topic   string
	payload []byte
}

// queue is the bounded offline queue: a ring that drops the oldest message
// when full and counts the drops. Messages leave it only when the hub has
// acknowledged them (PUBACK), so a connection lost mid-flight sends them
// again (at least once, as QoS 1 promises).
type queue struct {
	mu      sync.Mutex
	cap     int
	buf     []message // grows by doubling up to cap, so an idle device holds little
	head, n int
	next    uint64
	dropped uint64
	ready   chan struct{} // signalled (non-blocking) on push
}

func newQueue(size int) *queue {
	return &queue{cap: size, buf: make([]message, min(size, 8)), ready: make(chan struct{}, 1)}
}

func (q *queue) push(topic string, payload []byte) {
	q.mu.Lock()
	if q.n == len(q.buf) && len(q.buf) < q.cap {
		grown := make([]message, min(2*len(q.buf), q.cap))
		for i := 0; i < q.n; i++ {
			grown[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = grown, 0
	}
	if q.n == len(q.buf) {
		q.buf[q.head] = message{}
		q.head = (q.head + 1) % len(q.buf)
		q.n--
		q.dropped++
	}
	q.next++
	q.buf[(q.head+q.n)%len(q.buf)] = message{seq: q.next, topic: topic, payload: payload}
	q.n++
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// peek returns up to max of the oldest messages without removing them.
func (q *queue) peek(max int) []message {
	q.mu.Lock()
	defer q.mu.Unlock()
	if max > q.n {
		max = q.n
	}
	out := make([]message, max)
	for i := range out {
		out[i] = q.buf[(q.head+i)%len(q.buf)]
	}
	return out
}

// ack removes the acknowledged messages with seq <= upTo that are still at
// the front (the ones dropped meanwhile are gone already).
func (q *queue) ack(upTo uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.n > 0 && q.buf[q.head].seq <= upTo {
		q.buf[q.head] = message{}
		q.head = (q.head + 1) % len(q.buf)
		q.n--
	}
}

func (q *queue) stats() (queued int, dropped uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n, q.dropped
}
