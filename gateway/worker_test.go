package gateway

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/lightbus-go/lightbus/internal/webhook"
)

func validRegistration() *Registration {
	return &Registration{
		WorkerID: "auth-1",
		Service:  "auth",
		BaseURL:  "http://127.0.0.1:9000",
		APIs: []APIDeclaration{{Name: "auth", Events: []EventDeclaration{{Name: "user_registered"}},
			RPCs: []RPCDeclaration{{Name: "check_password", TimeoutMS: 500}}}},
		Listeners: []ListenerDeclaration{{Name: "create_user", Events: []string{"customers.new_customer", "billing.*"}, Path: "/lightbus/events/create_user"}},
	}
}

func TestRegistrationValidate(t *testing.T) {
	t.Parallel()

	if err := validRegistration().Validate(); err != nil {
		t.Fatalf("valid registration: %v", err)
	}
	if got := validRegistration().LeaseTTL(); got != DefaultLeaseTTL {
		t.Errorf("default lease = %s, want %s", got, DefaultLeaseTTL)
	}
	for name, mutate := range map[string]func(*Registration){
		"bad worker id":     func(r *Registration) { r.WorkerID = "a b" },
		"bad service":       func(r *Registration) { r.Service = "" },
		"relative base url": func(r *Registration) { r.BaseURL = "/x" },
		"ftp base url":      func(r *Registration) { r.BaseURL = "ftp://h" },
		"base url query":    func(r *Registration) { r.BaseURL = "http://h/?a=1" },
		"lease too short":   func(r *Registration) { r.LeaseTTLMS = 100 },
		"lease too long":    func(r *Registration) { r.LeaseTTLMS = 3_600_000 },
		"bad api":           func(r *Registration) { r.APIs[0].Name = "a-b" },
		"api twice":         func(r *Registration) { r.APIs = append(r.APIs, r.APIs[0]) },
		"bad event":         func(r *Registration) { r.APIs[0].Events[0].Name = "a.b" },
		"bad rpc":           func(r *Registration) { r.APIs[0].RPCs[0].Name = "" },
		"negative timeout":  func(r *Registration) { r.APIs[0].RPCs[0].TimeoutMS = -1 },
		"bad listener":      func(r *Registration) { r.Listeners[0].Name = "x y" },
		"listener twice":    func(r *Registration) { r.Listeners = append(r.Listeners, r.Listeners[0]) },
		"no events":         func(r *Registration) { r.Listeners[0].Events = nil },
		"unqualified event": func(r *Registration) { r.Listeners[0].Events = []string{"new_customer"} },
		"relative path":     func(r *Registration) { r.Listeners[0].Path = "events" },
		"path with query":   func(r *Registration) { r.Listeners[0].Path = "/e?x=1" },
		"lease overflow":    func(r *Registration) { r.LeaseTTLMS = 1<<58 + 15000 }, // ×1e6 wraps to 15 s
		"timeout overflow":  func(r *Registration) { r.APIs[0].RPCs[0].TimeoutMS = int(MaxRPCTimeout.Milliseconds()) + 1 },
		"long base url":     func(r *Registration) { r.BaseURL = "http://h/" + strings.Repeat("a", MaxBaseURLLen) },
		"NUL in base url":   func(r *Registration) { r.BaseURL = "http://h/\x00" },
		"long path":         func(r *Registration) { r.Listeners[0].Path = "/" + strings.Repeat("a", MaxListenerPathLen) },
		"NUL in path":       func(r *Registration) { r.Listeners[0].Path = "/a\x00" },
		"DEL in path":       func(r *Registration) { r.Listeners[0].Path = "/a\x7f" },
		"bad escape path":   func(r *Registration) { r.Listeners[0].Path = "/%zz" },
		"since year 10000":  func(r *Registration) { r.Listeners[0].Since = "9999-12-31T23:59:59-01:00" },
		"too many apis": func(r *Registration) {
			for i := range MaxRegistrationAPIs {
				r.APIs = append(r.APIs, APIDeclaration{Name: fmt.Sprintf("api%d", i)})
			}
		},
		"too many events": func(r *Registration) {
			r.APIs[0].Events = make([]EventDeclaration, MaxAPIMembers+1)
			for i := range r.APIs[0].Events {
				r.APIs[0].Events[i].Name = fmt.Sprintf("e%d", i)
			}
		},
		"too many rpcs": func(r *Registration) {
			r.APIs[0].RPCs = make([]RPCDeclaration, MaxAPIMembers+1)
			for i := range r.APIs[0].RPCs {
				r.APIs[0].RPCs[i].Name = fmt.Sprintf("r%d", i)
			}
		},
		"too many listeners": func(r *Registration) {
			for i := range MaxRegistrationListeners {
				r.Listeners = append(r.Listeners, ListenerDeclaration{Name: fmt.Sprintf("l%d", i), Events: []string{"a.b"}, Path: "/l"})
			}
		},
		"too many subscriptions": func(r *Registration) {
			for i := range MaxListenerEvents {
				r.Listeners[0].Events = append(r.Listeners[0].Events, fmt.Sprintf("a.e%d", i))
			}
		},
	} {
		r := validRegistration()
		mutate(r)
		if err := r.Validate(); ErrorCode(err) != EInvalid {
			t.Errorf("%s: got %v, want invalid", name, err)
		}
	}

	// Each bound itself is accepted.
	r := validRegistration()
	r.LeaseTTLMS = int(MaxLeaseTTL.Milliseconds())
	r.APIs[0].RPCs[0].TimeoutMS = int(MaxRPCTimeout.Milliseconds())
	r.BaseURL = "http://h/" + strings.Repeat("a", MaxBaseURLLen-len("http://h/"))
	r.Listeners[0].Path = "/" + strings.Repeat("é", (MaxListenerPathLen-1)/2)
	for i := len(r.Listeners[0].Events); i < MaxListenerEvents; i++ {
		r.Listeners[0].Events = append(r.Listeners[0].Events, fmt.Sprintf("a.e%d", i))
	}
	if err := r.Validate(); err != nil {
		t.Errorf("a registration at the bounds: %v", err)
	}
}

func TestNewSecret(t *testing.T) {
	t.Parallel()

	a, b := webhook.NewSecret(), webhook.NewSecret()
	if !strings.HasPrefix(a, "whsec_") || a == b {
		t.Fatalf("secrets %q, %q: want distinct whsec_ values", a, b)
	}
	if key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "whsec_")); err != nil || len(key) != 32 {
		t.Fatalf("secret %q: want 32 bytes in base64 (%v)", a, err)
	}
}
