package gateway

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// WorkerNetworks is the gateway's outbound policy: where the requests it
// makes to workers (RPCs and deliveries) may go. It is checked twice: on a
// registration's base URL as written ([WorkerNetworks.CheckBaseURL]), and on
// the address a connection is about to be made to, after name resolution
// ([WorkerNetworks.AllowAddr]), so that a host name that resolves somewhere
// else later (DNS rebinding) is refused too.
//
// It is built from a comma-separated list of networks (CIDRs, or single
// addresses) and host names (exact, or "*.example.com" for any name under
// example.com). The two kinds restrict independently:
//
//   - networks: a connection may go only to an address in a listed network;
//     with none listed, to any address except link-local ones
//     (169.254.0.0/16, fe80::/10) and cloud metadata addresses
//     (fd00:ec2::254, 100.100.100.200);
//   - host names: a base URL whose host is a name may be registered only when
//     the name is listed; with none listed, any name except
//     metadata.google.internal. A base URL whose host is an address literal
//     is checked against the networks instead.
//
// The nil *WorkerNetworks, like the empty list, is the default: every
// network and name but those above. Loopback is allowed by default.
type WorkerNetworks struct {
	prefixes []netip.Prefix // allowed networks; nil: all but deniedPrefixes
	hosts    []string       // allowed names, lower case; nil: all but deniedHosts
}

// deniedPrefixes are the networks the default policy refuses: link-local
// (where cloud metadata services answer, 169.254.169.254 among them) and
// the metadata addresses some clouds put elsewhere.
var deniedPrefixes = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("fd00:ec2::254/128"),
	netip.MustParsePrefix("100.100.100.200/32"),
}

// deniedHosts are the host names the default policy refuses.
var deniedHosts = []string{"metadata.google.internal"}

// ParseWorkerNetworks parses a comma-separated list of CIDRs, addresses and
// host names (see [WorkerNetworks]); spaces around entries are ignored and
// an empty list is the default policy.
func ParseWorkerNetworks(list string) (*WorkerNetworks, error) {
	p := &WorkerNetworks{}
	for entry := range strings.SplitSeq(list, ",") {
		entry = strings.TrimSpace(entry)
		switch {
		case entry == "":
			continue
		case strings.Contains(entry, "/"):
			prefix, err := netip.ParsePrefix(entry)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR: %w", entry, err)
			}
			p.prefixes = append(p.prefixes, prefix.Masked())
		default:
			if addr, err := netip.ParseAddr(entry); err == nil {
				addr = addr.Unmap().WithZone("")
				p.prefixes = append(p.prefixes, netip.PrefixFrom(addr, addr.BitLen()))
				continue
			}
			name := normalizeHost(entry)
			if !validHostPattern(name) {
				return nil, fmt.Errorf("%q is neither a CIDR, an address nor a host name", entry)
			}
			p.hosts = append(p.hosts, name)
		}
	}
	return p, nil
}

// String lists the policy's entries, or describes the default.
func (p *WorkerNetworks) String() string {
	var parts []string
	if p == nil || p.prefixes == nil {
		parts = append(parts, "any address but link-local and cloud metadata ones")
	} else {
		for _, prefix := range p.prefixes {
			parts = append(parts, prefix.String())
		}
	}
	if p == nil || p.hosts == nil {
		parts = append(parts, "any host name but "+strings.Join(deniedHosts, ", "))
	} else {
		parts = append(parts, p.hosts...)
	}
	return strings.Join(parts, ", ")
}

// AllowAddr reports whether a connection to addr may be made.
func (p *WorkerNetworks) AllowAddr(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() {
		return false
	}
	if p == nil || p.prefixes == nil {
		for _, prefix := range deniedPrefixes {
			if prefix.Contains(addr) {
				return false
			}
		}
		return true
	}
	for _, prefix := range p.prefixes {
		if prefix.Contains(addr) {
			return true
		}
	}
	return false
}

// allowHost reports whether a base URL with the host name name may be
// registered; name is normalized.
func (p *WorkerNetworks) allowHost(name string) bool {
	if p == nil || p.hosts == nil {
		for _, h := range deniedHosts {
			if matchHost(h, name) {
				return false
			}
		}
		return true
	}
	for _, h := range p.hosts {
		if matchHost(h, name) {
			return true
		}
	}
	return false
}

// CheckBaseURL checks a worker's base URL against the policy: its host as
// written, an address literal against the networks, a name against the
// host names. Errors: EInvalid for a URL without host, EForbidden for a host
// the policy refuses.
func (p *WorkerNetworks) CheckBaseURL(baseURL string) error {
	u, err := url.Parse(baseURL)
	if err != nil || u.Hostname() == "" {
		return Errorf(EInvalid, "invalid base_url %q: want an absolute http or https URL", baseURL)
	}
	host := u.Hostname()
	if addr, err := netip.ParseAddr(host); err == nil {
		if !p.AllowAddr(addr) {
			return Errorf(EForbidden, "base_url %q: the gateway's worker network policy (LIGHTBUS_WORKER_NETWORKS) does not allow address %s", baseURL, host)
		}
		return nil
	}
	if !p.allowHost(normalizeHost(host)) {
		return Errorf(EForbidden, "base_url %q: the gateway's worker network policy (LIGHTBUS_WORKER_NETWORKS) does not allow host %s", baseURL, host)
	}
	return nil
}

// normalizeHost lower-cases a host name and drops a final dot.
func normalizeHost(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}

// matchHost reports whether the normalized name matches pattern: equal, or
// under the domain of a "*." pattern.
func matchHost(pattern, name string) bool {
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		return strings.HasSuffix(name, suffix) && len(name) > len(suffix)
	}
	return pattern == name
}

// validHostPattern reports whether name is a host name, optionally starting
// with "*." (letters, digits, hyphens and dots, in labels of 1 to 63).
func validHostPattern(name string) bool {
	name = strings.TrimPrefix(name, "*.")
	if name == "" || len(name) > 253 || net.ParseIP(name) != nil {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}
