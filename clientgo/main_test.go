package lightbus_test

import (
	"os"
	"testing"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

// TestMain points LIGHTBUS_URL at a fake gateway (fake_test.go), so that the
// examples run, with their output checked, creating their buses from the
// environment as a service does.
func TestMain(m *testing.M) {
	url, stop := lightbus.StartExampleGateway()
	os.Setenv(lightbus.EnvURL, url)
	code := m.Run()
	stop()
	os.Exit(code)
}
