package main

import (
	"fmt"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// Config is the gateway's configuration, read from the environment. The
// README's configuration table lists every variable; keep the two in step.
type Config struct {
	// DatabaseURL is the Postgres connection string. Empty starts a private
	// development Postgres (see the README).
	DatabaseURL string `envconfig:"DATABASE_URL"`
	// DevDataDir is where the development Postgres keeps its data.
	DevDataDir string `envconfig:"LIGHTBUS_DEV_DATA_DIR"`

	Addr      string `envconfig:"LIGHTBUS_ADDR" default:":8080"`
	LogLevel  string `envconfig:"LIGHTBUS_LOG_LEVEL" default:"info"`
	LogFormat string `envconfig:"LIGHTBUS_LOG_FORMAT" default:"text"`

	DBMaxConns      int32         `envconfig:"LIGHTBUS_DB_MAX_CONNS" default:"20"`
	MaxBodyBytes    int64         `envconfig:"LIGHTBUS_MAX_BODY_BYTES" default:"1048576"`
	ShutdownTimeout time.Duration `envconfig:"LIGHTBUS_SHUTDOWN_TIMEOUT" default:"30s"`

	RPCTimeout    time.Duration `envconfig:"LIGHTBUS_RPC_TIMEOUT" default:"10s"`
	RPCMaxTimeout time.Duration `envconfig:"LIGHTBUS_RPC_MAX_TIMEOUT" default:"5m"`

	DeliveryTimeout     time.Duration `envconfig:"LIGHTBUS_DELIVERY_TIMEOUT" default:"30s"`
	DeliveryMaxAttempts int           `envconfig:"LIGHTBUS_DELIVERY_MAX_ATTEMPTS" default:"25"`
	DeliveryWorkers     int           `envconfig:"LIGHTBUS_DELIVERY_WORKERS" default:"100"`
	RetryBase           time.Duration `envconfig:"LIGHTBUS_RETRY_BASE" default:"1s"`
	RetryMax            time.Duration `envconfig:"LIGHTBUS_RETRY_MAX" default:"1h"`
	NoEndpointSnooze    time.Duration `envconfig:"LIGHTBUS_NO_ENDPOINT_SNOOZE" default:"1s"`
	FetchCooldown       time.Duration `envconfig:"LIGHTBUS_FETCH_COOLDOWN" default:"10ms"`
	FetchPollInterval   time.Duration `envconfig:"LIGHTBUS_FETCH_POLL_INTERVAL" default:"200ms"`
	// GroupMaxInFlight caps the deliveries one listener group has running
	// in this process, so that a slow group cannot take every delivery
	// worker; a delivery over the cap waits (snoozes) without using an
	// attempt.
	GroupMaxInFlight int `envconfig:"LIGHTBUS_GROUP_MAX_IN_FLIGHT" default:"10"`
	// RescueAfter is how long a delivery may stay running before River
	// treats it as stuck (its gateway died) and schedules a retry. 0 means
	// the delivery timeout plus one minute. It must exceed the delivery
	// timeout plus 5 s, or deliveries still running would be retried.
	RescueAfter time.Duration `envconfig:"LIGHTBUS_RESCUE_AFTER"`
	// DBConnectTimeout bounds opening one database connection, so that
	// requests fail with 503 instead of hanging while the database is
	// unreachable.
	DBConnectTimeout time.Duration `envconfig:"LIGHTBUS_DB_CONNECT_TIMEOUT" default:"2s"`
	// DBTimeout bounds each database call an HTTP request makes (and the
	// first look-up of an RPC's workers), so that a database that stops
	// answering without closing connections gives 503 unavailable instead
	// of hanging requests.
	DBTimeout time.Duration `envconfig:"LIGHTBUS_DB_TIMEOUT" default:"5s"`
	// DebugVars serves GET /debug/vars (expvar: memory statistics and the
	// goroutine count). Off by default.
	DebugVars bool `envconfig:"LIGHTBUS_DEBUG_VARS"`
}

// rescueAfter returns the effective RescueAfter.
func (c *Config) rescueAfter() time.Duration {
	if c.RescueAfter > 0 {
		return c.RescueAfter
	}
	return c.DeliveryTimeout + time.Minute
}

// loadConfig reads the configuration from the environment and validates it.
func loadConfig() (Config, error) {
	var cfg Config
	if err := envconfig.Process("", &cfg); err != nil {
		return cfg, fmt.Errorf("invalid configuration: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}

// Validate checks values that parse but make no sense, naming the variable.
func (c *Config) Validate() error {
	positive := []struct {
		name string
		ok   bool
	}{
		{"LIGHTBUS_DB_MAX_CONNS", c.DBMaxConns > 0},
		{"LIGHTBUS_MAX_BODY_BYTES", c.MaxBodyBytes > 0},
		{"LIGHTBUS_SHUTDOWN_TIMEOUT", c.ShutdownTimeout > 0},
		{"LIGHTBUS_RPC_TIMEOUT", c.RPCTimeout > 0},
		{"LIGHTBUS_RPC_MAX_TIMEOUT", c.RPCMaxTimeout > 0},
		{"LIGHTBUS_DELIVERY_TIMEOUT", c.DeliveryTimeout > 0},
		{"LIGHTBUS_DELIVERY_MAX_ATTEMPTS", c.DeliveryMaxAttempts > 0},
		{"LIGHTBUS_DELIVERY_WORKERS", c.DeliveryWorkers > 0},
		{"LIGHTBUS_RETRY_BASE", c.RetryBase > 0},
		{"LIGHTBUS_RETRY_MAX", c.RetryMax > 0},
		{"LIGHTBUS_NO_ENDPOINT_SNOOZE", c.NoEndpointSnooze > 0},
		{"LIGHTBUS_FETCH_COOLDOWN", c.FetchCooldown > 0},
		{"LIGHTBUS_FETCH_POLL_INTERVAL", c.FetchPollInterval > 0},
		{"LIGHTBUS_GROUP_MAX_IN_FLIGHT", c.GroupMaxInFlight > 0},
		{"LIGHTBUS_DB_CONNECT_TIMEOUT", c.DBConnectTimeout > 0},
		{"LIGHTBUS_DB_TIMEOUT", c.DBTimeout > 0},
	}
	for _, p := range positive {
		if !p.ok {
			return fmt.Errorf("%s must be positive", p.name)
		}
	}
	switch {
	case c.Addr == "":
		return fmt.Errorf("LIGHTBUS_ADDR must not be empty")
	case c.RPCTimeout > c.RPCMaxTimeout:
		return fmt.Errorf("LIGHTBUS_RPC_TIMEOUT (%s) exceeds LIGHTBUS_RPC_MAX_TIMEOUT (%s)", c.RPCTimeout, c.RPCMaxTimeout)
	case c.RetryBase > c.RetryMax:
		return fmt.Errorf("LIGHTBUS_RETRY_BASE (%s) exceeds LIGHTBUS_RETRY_MAX (%s)", c.RetryBase, c.RetryMax)
	case c.RescueAfter < 0:
		return fmt.Errorf("LIGHTBUS_RESCUE_AFTER must not be negative")
	case c.RescueAfter > 0 && c.RescueAfter <= c.DeliveryTimeout+5*time.Second:
		return fmt.Errorf("LIGHTBUS_RESCUE_AFTER (%s) must exceed LIGHTBUS_DELIVERY_TIMEOUT (%s) plus 5s", c.RescueAfter, c.DeliveryTimeout)
	case c.FetchCooldown > c.FetchPollInterval:
		return fmt.Errorf("LIGHTBUS_FETCH_COOLDOWN (%s) exceeds LIGHTBUS_FETCH_POLL_INTERVAL (%s)", c.FetchCooldown, c.FetchPollInterval)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("LIGHTBUS_LOG_LEVEL %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("LIGHTBUS_LOG_FORMAT %q: want text or json", c.LogFormat)
	}
	return nil
}
