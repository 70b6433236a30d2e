package lightbus

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
)

// Environment variables that set how a worker runs. `lightbus run` sets them
// from its flags; [Main] reads them, and they override what the code set
// (flags beat the environment, which beats the code).
const (
	EnvOnly        = "LIGHTBUS_ONLY"         // run only these features: rpcs, events, tasks (comma-separated)
	EnvSkip        = "LIGHTBUS_SKIP"         // run every feature but these
	EnvProcessName = "LIGHTBUS_PROCESS_NAME" // the worker id, with placeholders (see [ProcessName])
	EnvLogLevel    = "LIGHTBUS_LOG_LEVEL"    // debug, info, warn or error
	EnvLogFormat   = "LIGHTBUS_LOG_FORMAT"   // text or json
)

// The features of a worker, which $LIGHTBUS_ONLY and $LIGHTBUS_SKIP (and
// `lightbus run --only` and `--skip`) turn on and off.
const (
	// FeatureRPCs is serving RPCs: the worker registers its APIs, and the
	// gateway sends it calls.
	FeatureRPCs = "rpcs"
	// FeatureEvents is listening: the worker registers its listener groups,
	// and the gateway delivers events to it.
	FeatureEvents = "events"
	// FeatureTasks is running background tasks ([Bus.Go]) and scheduled
	// tasks ([Bus.Every], [Bus.Schedule]).
	FeatureTasks = "tasks"
)

// ParseFeatures parses a comma-separated list of features (rpcs, events,
// tasks), as $LIGHTBUS_ONLY and $LIGHTBUS_SKIP hold them. An unknown or
// empty member is an error.
func ParseFeatures(s string) (map[string]bool, error) {
	set := map[string]bool{}
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		switch f {
		case FeatureRPCs, FeatureEvents, FeatureTasks:
			set[f] = true
		default:
			return nil, fmt.Errorf("unknown feature %q: want rpcs, events or tasks", f)
		}
	}
	return set, nil
}

// enabledFeatures returns the features to run given $LIGHTBUS_ONLY and
// $LIGHTBUS_SKIP; nil means all.
func enabledFeatures(only, skip string) (map[string]bool, error) {
	switch {
	case only != "" && skip != "":
		return nil, fmt.Errorf("%s and %s exclude each other", EnvOnly, EnvSkip)
	case only != "":
		set, err := ParseFeatures(only)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvOnly, err)
		}
		return set, nil
	case skip != "":
		set, err := ParseFeatures(skip)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", EnvSkip, err)
		}
		on := map[string]bool{}
		for _, f := range []string{FeatureRPCs, FeatureEvents, FeatureTasks} {
			on[f] = !set[f]
		}
		return on, nil
	}
	return nil, nil
}

// runs reports whether the worker runs feature.
func (b *Bus) runs(feature string) bool {
	return b.features == nil || b.features[feature]
}

// ProcessName expands the placeholders of a process name template into a
// worker id: {hostname} (with characters a worker id cannot hold replaced
// by "-"), {pid}, {random4} (4 random hexadecimal digits) and {friendly}
// (a random adjective-noun pair, such as "brave-otter"). The result must
// be a valid worker id, [A-Za-z0-9._-]{1,128}. A worker id names one
// process to the gateway, across all services: "{hostname}-{pid}" or
// "orders-{random4}" keep it unique.
func ProcessName(template string) (string, error) {
	var out strings.Builder
	rest := template
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			out.WriteString(rest)
			break
		}
		out.WriteString(rest[:i])
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("process name %q: unclosed {", template)
		}
		switch p := rest[i+1 : i+j]; p {
		case "hostname":
			host, _ := os.Hostname()
			out.WriteString(cleanWorkerID(host))
		case "pid":
			out.WriteString(strconv.Itoa(os.Getpid()))
		case "random4":
			out.WriteString(randomHex(2))
		case "friendly":
			out.WriteString(friendlyName())
		default:
			return "", fmt.Errorf("process name %q: unknown placeholder {%s}: want {hostname}, {pid}, {random4} or {friendly}", template, p)
		}
		rest = rest[i+j+1:]
	}
	id := out.String()
	if !isWorkerID(id) {
		return "", fmt.Errorf("process name %q gives %q: want a worker id, [A-Za-z0-9._-]{1,128}", template, id)
	}
	return id, nil
}

// cleanWorkerID replaces the characters a worker id cannot hold with "-".
func cleanWorkerID(s string) string {
	clean := []byte(s)
	for i, c := range clean {
		if !isWorkerIDByte(c) {
			clean[i] = '-'
		}
	}
	return string(clean)
}

var (
	friendlyAdjectives = []string{"amber", "brave", "calm", "eager", "fuzzy", "gentle", "happy", "jolly", "kind", "lucky", "merry", "nimble", "proud", "quiet", "rapid", "sunny", "tidy", "witty"}
	friendlyNouns      = []string{"badger", "comet", "falcon", "gecko", "heron", "koala", "lynx", "maple", "otter", "panda", "quail", "raven", "tiger", "walrus", "willow", "yak", "zebra"}
)

func friendlyName() string {
	return friendlyAdjectives[rand.IntN(len(friendlyAdjectives))] + "-" + friendlyNouns[rand.IntN(len(friendlyNouns))]
}

// parseLogLevel parses debug, info, warn or error.
func parseLogLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("log level %q: want debug, info, warn or error", s)
}

// applyEnv applies the worker settings of the environment (read with
// getenv) over the Bus's: the gateway URL and token, the service name, the
// process name, the logging and the features. An empty variable leaves
// the setting alone. It is for [Main], before the worker starts.
func (b *Bus) applyEnv(getenv func(string) string) error {
	var errs []error
	if s := getenv(EnvURL); s != "" {
		if err := checkBaseURL(s); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvURL, err))
		} else {
			b.gateway = strings.TrimRight(s, "/")
		}
	}
	if s := getenv(EnvToken); s != "" {
		if strings.ContainsAny(s, " \t\r\n") {
			errs = append(errs, fmt.Errorf("%s: the token must not contain spaces or line breaks", EnvToken))
		} else {
			b.authorization = bearer(s)
		}
	}
	if s := getenv(EnvServiceName); s != "" {
		if !isAPIName(s) {
			errs = append(errs, fmt.Errorf("%s: invalid service name %q: want identifiers joined by dots", EnvServiceName, s))
		} else {
			b.service = s
		}
	}
	if s := getenv(EnvProcessName); s != "" {
		id, err := ProcessName(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", EnvProcessName, err))
		} else {
			b.workerID = id
		}
	}
	level, format := getenv(EnvLogLevel), getenv(EnvLogFormat)
	if level != "" || format != "" {
		opts := &slog.HandlerOptions{Level: slog.LevelInfo}
		if level != "" {
			l, err := parseLogLevel(level)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", EnvLogLevel, err))
			}
			opts.Level = l
		}
		switch format {
		case "", "text":
			b.log = slog.New(slog.NewTextHandler(os.Stderr, opts))
		case "json":
			b.log = slog.New(slog.NewJSONHandler(os.Stderr, opts))
		default:
			errs = append(errs, fmt.Errorf("%s: log format %q: want text or json", EnvLogFormat, format))
		}
	}
	features, err := enabledFeatures(getenv(EnvOnly), getenv(EnvSkip))
	if err != nil {
		errs = append(errs, err)
	} else if features != nil {
		b.features = features
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lightbus: %w", err)
	}
	return nil
}
