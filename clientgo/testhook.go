package lightbus

import (
	"context"
	"crypto/rand"
	"sync"

	"github.com/lightbus-go/lightbus/internal/testhook"
	"github.com/lightbus-go/lightbus/internal/webhook"
)

// The hooks of package lightbustest (see internal/testhook).
func init() {
	testhook.Start = testStart
	testhook.ListenerKey = testListenerKey
	testhook.RPCKey = testRPCKey
}

// testStarted holds, for each bus whose OnStart hooks testStart ran, their
// result.
var testStarted sync.Map // *Bus → *startOnce

// startOnce runs a bus's OnStart hooks once and keeps their error.
type startOnce struct {
	once sync.Once
	err  error
}

func testStart(ctx context.Context, bus any) error {
	b := bus.(*Bus)
	v, _ := testStarted.LoadOrStore(b, &startOnce{})
	s := v.(*startOnce)
	s.once.Do(func() { s.err = b.runStart(ctx) })
	return s.err
}

func testListenerKey(bus any, listener string) ([]byte, bool) {
	b := bus.(*Bus)
	b.mu.Lock()
	defer b.mu.Unlock()
	ls := b.listeners[listener]
	if ls == nil {
		return nil, false
	}
	if ls.key == nil {
		ls.key = randomKey()
	}
	return ls.key, true
}

func testRPCKey(bus any) []byte {
	b := bus.(*Bus)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.rpcKey == nil {
		b.setRPCKey(webhook.NewSecret())
	}
	return b.rpcKey
}

func randomKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}
