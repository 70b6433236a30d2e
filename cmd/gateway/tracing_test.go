package main

import "testing"

// TestTracesExported: which OpenTelemetry variables turn export on and off,
// and where spans go.
func TestTracesExported(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		mutate   func(*Config)
		exported bool
		endpoint string
	}{
		{"nothing set", func(*Config) {}, false, ""},
		{"endpoint", func(c *Config) { c.OTelEndpoint = "http://collector:4318" }, true, "http://collector:4318/v1/traces"},
		{"endpoint with a path", func(c *Config) { c.OTelEndpoint = "https://collector/otlp/" }, true, "https://collector/otlp/v1/traces"},
		{"traces endpoint, as it is", func(c *Config) {
			c.OTelEndpoint, c.OTelTracesEndpoint = "http://other:4318", "http://collector:4318/custom"
		}, true, "http://collector:4318/custom"},
		{"exporter otlp alone", func(c *Config) { c.OTelTracesExporter = "otlp" }, true, ""},
		{"exporter none", func(c *Config) { c.OTelEndpoint, c.OTelTracesExporter = "http://collector:4318", "none" }, false, ""},
		{"SDK disabled", func(c *Config) { c.OTelEndpoint, c.OTelSDKDisabled = "http://collector:4318", "TRUE" }, false, ""},
		{"SDK not disabled", func(c *Config) { c.OTelEndpoint, c.OTelSDKDisabled = "http://collector:4318", "false" }, true, "http://collector:4318/v1/traces"},
		{"a protocol that is not used", func(c *Config) { c.OTelProtocol = "grpc" }, false, ""},
	} {
		c := testConfig()
		tc.mutate(&c)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := c.tracesExported(); got != tc.exported {
			t.Errorf("%s: exported %v, want %v", tc.name, got, tc.exported)
		}
		if got := c.traceEndpoint(); tc.exported && got != tc.endpoint {
			t.Errorf("%s: endpoint %q, want %q", tc.name, got, tc.endpoint)
		}
	}
}
