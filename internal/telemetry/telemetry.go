// Package telemetry stores what devices publish: an Ingester batches
// accepted messages into the store (one transaction per batch, not per
// message), a retention sweep deletes old ones, and List serves a device's
// messages, newest last, to its own tenant.
package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Message is one stored publish.
type Message struct {
	Seq         int64
	TenantID    string
	DeviceID    string
	Topic       string
	Payload     []byte
	ContentType string // as sent (MQTT 5 content type) or detected: application/json, application/cbor, application/octet-stream
	Received    time.Time
}

// Store is what telemetry needs from storage.
type Store interface {
	InsertBatch(ctx context.Context, msgs []Message) error
	// List returns up to limit messages of a device in its tenant, oldest
	// first, the newest last.
	List(ctx context.Context, tenantID, deviceID string, limit int) ([]Message, error)
	DeleteBefore(ctx context.Context, t time.Time) (int64, error)
}

// Options configure an Ingester.
type Options struct {
	Store      Store
	Now        func() time.Time
	Logger     *slog.Logger
	BatchSize  int           // flush when this many are waiting
	FlushEvery time.Duration // and at least this often
	QueueSize  int           // messages waiting beyond this are dropped (and counted)
	Retention  time.Duration // messages older than this are deleted
}

// Ingester batches messages into the store.
type Ingester struct {
	o       Options
	in      chan Message
	dropped sync.Mutex
	drops   int64
	wg      sync.WaitGroup
	stop    chan struct{}
	once    sync.Once
}

// New returns an ingester; Start runs it.
func New(o Options) (*Ingester, error) {
	if o.Store == nil {
		return nil, errors.New("telemetry: Store is required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.BatchSize <= 0 {
		o.BatchSize = defaultBatchSize
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = defaultFlushEvery
	}
	if o.QueueSize <= 0 {
		o.QueueSize = defaultQueueSize
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	return &Ingester{o: o, in: make(chan Message, o.QueueSize), stop: make(chan struct{})}, nil
}

// DetectContentType names a payload's type when the publisher did not.
func DetectContentType(declared string, payload []byte) string {
	if declared != "" {
		return declared
	}
	if json.Valid(payload) {
		return "application/json"
	}
	if looksCBOR(payload) {
		return "application/cbor"
	}
	return "application/octet-stream"
}

// looksCBOR accepts a payload whose first byte starts a CBOR map or array
// (major types 4 and 5), the shapes devices send.
func looksCBOR(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	major := b[0] >> 5
	return major == 4 || major == 5
}

// Ingest queues a message without blocking; a full queue drops it.
func (g *Ingester) Ingest(m Message) {
	m.ContentType = DetectContentType(m.ContentType, m.Payload)
	select {
	case g.in <- m:
	default:
		g.dropped.Lock()
		g.drops++
		g.dropped.Unlock()
	}
}

// Dropped is how many messages a full queue dropped.
func (g *Ingester) Dropped() int64 {
	g.dropped.Lock()
	defer g.dropped.Unlock()
	return g.drops
}

// Start runs the batcher and the retention sweep until Close.
func (g *Ingester) Start() {
	g.wg.Add(2)
	go g.batchLoop()
	go g.retentionLoop()
}

func (g *Ingester) batchLoop() {
	defer g.wg.Done()
	t := time.NewTicker(g.o.FlushEvery)
	defer t.Stop()
	batch := make([]Message, 0, g.o.BatchSize)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		if err := g.o.Store.InsertBatch(context.Background(), batch); err != nil {
			g.o.Logger.Error("storing telemetry batch", "messages", len(batch), "err", err)
		}
		batch = batch[:0]
	}
	for {
		select {
		case m := <-g.in:
			batch = append(batch, m)
			if len(batch) >= g.o.BatchSize {
				flush()
			}
		case <-t.C:
			flush()
		case <-g.stop:
			for {
				select {
				case m := <-g.in:
					batch = append(batch, m)
					if len(batch) >= g.o.BatchSize {
						flush()
					}
				default:
					flush()
					return
				}
			}
		}
	}
}

func (g *Ingester) retentionLoop() {
	defer g.wg.Done()
	t := time.NewTicker(retentionSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			g.Sweep(context.Background())
		case <-g.stop:
			return
		}
	}
}

// Sweep deletes messages past the retention period.
func (g *Ingester) Sweep(ctx context.Context) (int64, error) {
	n, err := g.o.Store.DeleteBefore(ctx, g.o.Now().Add(-g.o.Retention))
	if err != nil {
		g.o.Logger.Error("telemetry retention sweep", "err", err)
	}
	return n, err
}

// Close flushes what is queued and stops.
func (g *Ingester) Close() {
	g.once.Do(func() { close(g.stop) })
	g.wg.Wait()
}

// List returns a device's messages (newest last), at most limit.
func (g *Ingester) List(ctx context.Context, tenantID, deviceID string, limit int) ([]Message, error) {
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	return g.o.Store.List(ctx, tenantID, deviceID, limit)
}
