package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// defaultServiceName is the service.name of the gateway's spans unless
// OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES) names
// another.
const defaultServiceName = "lightbus-gateway"

// tracesExported reports whether the gateway exports spans: an OTLP
// endpoint is set or OTEL_TRACES_EXPORTER is otlp, and neither
// OTEL_TRACES_EXPORTER=none nor OTEL_SDK_DISABLED=true turns them off.
func (c *Config) tracesExported() bool {
	if strings.EqualFold(strings.TrimSpace(c.OTelSDKDisabled), "true") {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(c.OTelTracesExporter)) {
	case "none":
		return false
	case "otlp":
		return true
	}
	return c.OTelEndpoint != "" || c.OTelTracesEndpoint != ""
}

// validateTracing checks the OpenTelemetry variables the gateway reads:
// it exports OTLP over HTTP with protobuf, and nothing else.
func (c *Config) validateTracing() error {
	switch strings.ToLower(strings.TrimSpace(c.OTelTracesExporter)) {
	case "", "otlp", "none":
	default:
		return fmt.Errorf("OTEL_TRACES_EXPORTER %q: the gateway exports traces with otlp only: want otlp or none", c.OTelTracesExporter)
	}
	if !c.tracesExported() {
		return nil
	}
	protocol, name := c.OTelProtocol, "OTEL_EXPORTER_OTLP_PROTOCOL"
	if c.OTelTracesProtocol != "" {
		protocol, name = c.OTelTracesProtocol, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
	}
	if protocol != "" && protocol != "http/protobuf" {
		return fmt.Errorf("%s %q: the gateway exports OTLP over HTTP with protobuf only: want http/protobuf", name, protocol)
	}
	for _, e := range []struct{ name, value string }{
		{"OTEL_EXPORTER_OTLP_ENDPOINT", c.OTelEndpoint},
		{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", c.OTelTracesEndpoint},
	} {
		if e.value == "" {
			continue
		}
		u, err := url.Parse(e.value)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s %q: want an http or https URL such as http://collector:4318", e.name, e.value)
		}
	}
	return nil
}

// traceEndpoint is the URL spans are sent to: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
// as it is, else OTEL_EXPORTER_OTLP_ENDPOINT with /v1/traces added to its
// path, as the OTLP exporter specification wants; "" leaves the exporter's
// default (http://localhost:4318/v1/traces).
func (c *Config) traceEndpoint() string {
	if c.OTelTracesEndpoint != "" {
		return c.OTelTracesEndpoint
	}
	if c.OTelEndpoint == "" {
		return ""
	}
	u, err := url.Parse(c.OTelEndpoint) // checked by validateTracing
	if err != nil {
		return c.OTelEndpoint
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	return u.String()
}

// newTracerProvider returns the provider of the gateway's spans, batching
// them to the OTLP/HTTP exporter, or nil when traces are not exported (see
// tracesExported): the gateway then makes no spans but still passes on the
// trace context it receives. Shut the provider down to flush its spans.
func newTracerProvider(ctx context.Context, cfg Config, logger *slog.Logger) (*sdktrace.TracerProvider, error) {
	if !cfg.tracesExported() {
		return nil, nil
	}
	var opts []otlptracehttp.Option
	endpoint := cfg.traceEndpoint()
	if endpoint != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(endpoint))
	}
	exporter, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("trace exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", defaultServiceName)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
		resource.WithTelemetrySDK())
	if err != nil {
		// A malformed OTEL_RESOURCE_ATTRIBUTES: the rest of the resource is kept.
		logger.WarnContext(ctx, "trace resource incomplete", slog.String("error", err.Error()))
	}
	// The exporter's failures (an unreachable collector) are logged, not
	// fatal: spans are dropped, the bus goes on.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("trace export failed", slog.String("error", err.Error()))
	}))
	if endpoint == "" {
		endpoint = "the exporter's default (http://localhost:4318/v1/traces)"
	}
	logger.InfoContext(ctx, "exporting traces over OTLP/HTTP", slog.String("endpoint", endpoint))
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res)), nil
}
