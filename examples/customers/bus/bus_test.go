package bus

import (
	"net/http"
	"testing"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/clientgo/lightbustest"
)

// The listener, delivered a signed event in process, calls auth.create_user
// on a mock bus.
func TestCreateUserListener(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T) (*lightbus.Bus, *lightbustest.MockBus) {
		bus := lightbus.MustCreate(lightbus.WithService("customers"), lightbus.WithURL("http://127.0.0.1:1"))
		mock := lightbustest.NewMockBus(t)
		setUp(bus, mock)
		return bus, mock
	}

	t.Run("CallsCreateUser", func(t *testing.T) {
		t.Parallel()
		bus, mock := setup(t)
		mock.OnCall("auth.create_user").Return(map[string]any{"username": "bob_smith", "created": true}).Times(1)
		status := lightbustest.Deliver(t, bus, "create_user", "customers.new_customer", NewCustomerParams{Name: "Bob  Smith", Email: "bob@example.com"})
		if status != http.StatusNoContent {
			t.Errorf("delivery answered %d, want 204", status)
		}
		mock.AssertCalledWith(t, "auth.create_user", map[string]string{"username": "bob_smith", "email": "bob@example.com"})
	})

	t.Run("FailedCallRetries", func(t *testing.T) {
		t.Parallel()
		bus, mock := setup(t)
		mock.OnCall("auth.create_user").ReturnError(&lightbus.Error{Status: 503, Code: lightbus.CodeNoWorker})
		// A failed listener answers 500: the gateway delivers the event again
		// later.
		status := lightbustest.Deliver(t, bus, "create_user", "customers.new_customer", NewCustomerParams{Name: "Sally", Email: "sally@example.com"})
		if status != http.StatusInternalServerError {
			t.Errorf("delivery answered %d, want 500", status)
		}
		mock.AssertCalled(t, "auth.create_user", 1)
	})

	t.Run("BadParams", func(t *testing.T) {
		t.Parallel()
		bus, mock := setup(t)
		status := lightbustest.Deliver(t, bus, "create_user", "customers.new_customer", map[string]any{"name": 42})
		if status != http.StatusBadRequest {
			t.Errorf("delivery answered %d, want 400", status)
		}
		mock.AssertCalled(t, "auth.create_user", 0)
	})
}
