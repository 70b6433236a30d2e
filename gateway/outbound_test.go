package gateway

import (
	"net/netip"
	"testing"
)

func TestWorkerNetworks(t *testing.T) {
	t.Parallel()

	parse := func(list string) *WorkerNetworks {
		t.Helper()
		p, err := ParseWorkerNetworks(list)
		if err != nil {
			t.Fatalf("ParseWorkerNetworks(%q): %v", list, err)
		}
		return p
	}
	for _, bad := range []string{"10.0.0.0/33", "not a host", "*.", "-/8", "a..b"} {
		if _, err := ParseWorkerNetworks(bad); err == nil {
			t.Errorf("ParseWorkerNetworks(%q): want an error", bad)
		}
	}

	for _, tc := range []struct {
		list    string
		allowed []string
		refused []string
	}{
		{
			list:    "", // the default
			allowed: []string{"127.0.0.1", "::1", "10.1.2.3", "192.168.0.1", "8.8.8.8", "2001:db8::1", "fd00:ec2::253", "100.100.100.201"},
			refused: []string{"169.254.169.254", "169.254.0.1", "fe80::1", "fe80::1%eth0", "fd00:ec2::254", "100.100.100.200", "::ffff:169.254.169.254"},
		},
		{
			list:    "10.0.0.0/8, 192.168.1.7, localhost",
			allowed: []string{"10.0.0.1", "10.255.255.255", "192.168.1.7", "::ffff:10.0.0.1"},
			refused: []string{"127.0.0.1", "192.168.1.8", "11.0.0.1", "169.254.169.254", "::1"},
		},
		{
			list:    "localhost", // names only: the networks stay the default
			allowed: []string{"127.0.0.1", "10.0.0.1"},
			refused: []string{"169.254.169.254"},
		},
	} {
		p := parse(tc.list)
		for _, a := range tc.allowed {
			if !p.AllowAddr(netip.MustParseAddr(a)) {
				t.Errorf("policy %q refuses %s", tc.list, a)
			}
		}
		for _, a := range tc.refused {
			if p.AllowAddr(netip.MustParseAddr(a)) {
				t.Errorf("policy %q allows %s", tc.list, a)
			}
		}
	}
	var none *WorkerNetworks
	if none.AllowAddr(netip.MustParseAddr("169.254.169.254")) || !none.AllowAddr(netip.MustParseAddr("127.0.0.1")) || none.AllowAddr(netip.Addr{}) {
		t.Error("the nil policy is not the default")
	}

	for _, tc := range []struct {
		list, url string
		code      string // "" when allowed
	}{
		{"", "http://127.0.0.1:8000", ""},
		{"", "http://worker.internal:8000", ""},
		{"", "http://169.254.169.254/latest/meta-data", EForbidden},
		{"", "http://[fd00:ec2::254]", EForbidden},
		{"", "http://metadata.google.internal", EForbidden},
		{"", "http://Metadata.Google.Internal.:80", EForbidden},
		{"10.0.0.0/8", "http://10.0.0.5:8000", ""},
		{"10.0.0.0/8", "http://127.0.0.1:8000", EForbidden},
		{"10.0.0.0/8", "http://any.name:8000", ""}, // no names listed: checked at connect time
		{"10.0.0.0/8, auth.internal", "http://auth.internal:8000", ""},
		{"10.0.0.0/8, auth.internal", "http://billing.internal:8000", EForbidden},
		{"*.svc.cluster.local", "http://auth.ns.svc.cluster.local", ""},
		{"*.svc.cluster.local", "http://svc.cluster.local", EForbidden},
		{"*.svc.cluster.local", "http://evilsvc.cluster.local", EForbidden},
		{"", "http://", EInvalid},
	} {
		err := parse(tc.list).CheckBaseURL(tc.url)
		if tc.code == "" && err != nil || tc.code != "" && ErrorCode(err) != tc.code {
			t.Errorf("policy %q, base URL %s: got %v, want %q", tc.list, tc.url, err, tc.code)
		}
	}
}
