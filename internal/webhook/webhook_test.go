package webhook

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The example of the Standard Webhooks specification.
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = "1614265330"
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var vectorTime = time.Unix(1614265330, 0)

func vectorKey(t testing.TB) []byte {
	t.Helper()
	key, err := DecodeSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func headers(id, ts, sig string) http.Header {
	h := http.Header{}
	if id != "" {
		h.Set("webhook-id", id)
	}
	if ts != "" {
		h.Set("webhook-timestamp", ts)
	}
	if sig != "" {
		h.Set("webhook-signature", sig)
	}
	return h
}

func TestSignVector(t *testing.T) {
	t.Parallel()
	key := vectorKey(t)
	if got := Sign(key, vectorID, vectorTimestamp, []byte(vectorBody)); got != vectorSignature {
		t.Errorf("Sign = %s, want %s", got, vectorSignature)
	}
	got, err := SignSecret(vectorSecret, vectorID, vectorTimestamp, []byte(vectorBody))
	if err != nil || got != vectorSignature {
		t.Errorf("SignSecret = %s, %v, want %s", got, err, vectorSignature)
	}
	// The prefix may be left out.
	got, err = SignSecret(strings.TrimPrefix(vectorSecret, SecretPrefix), vectorID, vectorTimestamp, []byte(vectorBody))
	if err != nil || got != vectorSignature {
		t.Errorf("SignSecret without prefix = %s, %v", got, err)
	}
	if err := Verify(key, headers(vectorID, vectorTimestamp, vectorSignature), []byte(vectorBody), vectorTime, DefaultTolerance); err != nil {
		t.Errorf("the specification's example does not verify: %v", err)
	}
}

func TestHeaderConstantsAreCanonical(t *testing.T) {
	t.Parallel()
	for _, h := range []string{HeaderID, HeaderTimestamp, HeaderSignature} {
		if http.CanonicalHeaderKey(h) != h {
			t.Errorf("%s is not canonical", h)
		}
	}
}

func TestDecodeSecret(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "whsec_", "whsec_" + base64.StdEncoding.EncodeToString(nil), "whsec_not base64!", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", "sk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		if key, err := DecodeSecret(bad); err == nil || key != nil {
			t.Errorf("DecodeSecret(%q) = %x, %v; want an error", bad, key, err)
		} else if err.Error() != "bad signing secret: want whsec_ and base64" {
			t.Errorf("DecodeSecret(%q): error %q", bad, err)
		}
		if sig, err := SignSecret(bad, "id", "1", nil); err == nil || sig != "" {
			t.Errorf("SignSecret(%q) = %q, %v; want an error", bad, sig, err)
		}
	}
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	a, b := NewSecret(), NewSecret()
	if a == b {
		t.Fatal("two secrets are equal")
	}
	if !strings.HasPrefix(a, SecretPrefix) {
		t.Errorf("secret %q lacks the prefix", a)
	}
	key, err := DecodeSecret(a)
	if err != nil || len(key) != 32 {
		t.Errorf("secret %q: key of %d bytes, %v", a, len(key), err)
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	key := vectorKey(t)
	other := []byte("some other key")
	body := []byte(vectorBody)
	ts := func(d time.Duration) string { return strconv.FormatInt(vectorTime.Add(d).Unix(), 10) }
	signed := func(k []byte, d time.Duration) string { return Sign(k, vectorID, ts(d), body) }
	raw := strings.TrimPrefix(vectorSignature, "v1,")
	for _, tc := range []struct {
		name    string
		key     []byte
		h       http.Header
		body    string
		wantErr string // "" verifies
	}{
		{"vector", key, headers(vectorID, vectorTimestamp, vectorSignature), vectorBody, ""},
		{"4m59s old", key, headers(vectorID, ts(-299*time.Second), signed(key, -299*time.Second)), vectorBody, ""},
		{"5m old", key, headers(vectorID, ts(-5*time.Minute), signed(key, -5*time.Minute)), vectorBody, ""},
		{"5m in the future", key, headers(vectorID, ts(5*time.Minute), signed(key, 5*time.Minute)), vectorBody, ""},
		{"5m01s old", key, headers(vectorID, ts(-301*time.Second), signed(key, -301*time.Second)), vectorBody, "webhook-timestamp " + ts(-301*time.Second) + " is more than 5m0s from now"},
		{"5m01s in the future", key, headers(vectorID, ts(301*time.Second), signed(key, 301*time.Second)), vectorBody, "webhook-timestamp " + ts(301*time.Second) + " is more than 5m0s from now"},
		{"10m old", key, headers(vectorID, ts(-10*time.Minute), signed(key, -10*time.Minute)), vectorBody, "webhook-timestamp " + ts(-10*time.Minute) + " is more than 5m0s from now"},
		{"timestamp not a number", key, headers(vectorID, "1614265330.5", vectorSignature), vectorBody, `bad webhook-timestamp "1614265330.5"`},
		{"timestamp in milliseconds", key, headers(vectorID, "1614265330000", Sign(key, vectorID, "1614265330000", body)), vectorBody, "webhook-timestamp 1614265330000 is more than 5m0s from now"},
		{"missing id", key, headers("", vectorTimestamp, vectorSignature), vectorBody, "missing webhook-id, webhook-timestamp or webhook-signature"},
		{"missing timestamp", key, headers(vectorID, "", vectorSignature), vectorBody, "missing webhook-id, webhook-timestamp or webhook-signature"},
		{"missing signature", key, headers(vectorID, vectorTimestamp, ""), vectorBody, "missing webhook-id, webhook-timestamp or webhook-signature"},
		{"no key", nil, headers(vectorID, vectorTimestamp, vectorSignature), vectorBody, "no signing key"},
		{"wrong key", other, headers(vectorID, vectorTimestamp, vectorSignature), vectorBody, "no valid v1 signature in webhook-signature"},
		{"other body", key, headers(vectorID, vectorTimestamp, vectorSignature), `{"test": 2432232315}`, "no valid v1 signature in webhook-signature"},
		{"other id", key, headers("msg_other", vectorTimestamp, vectorSignature), vectorBody, "no valid v1 signature in webhook-signature"},
		{"other timestamp", key, headers(vectorID, "1614265331", vectorSignature), vectorBody, "no valid v1 signature in webhook-signature"},
		{"forged signature", key, headers(vectorID, vectorTimestamp, "v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32))), vectorBody, "no valid v1 signature in webhook-signature"},
		{"truncated signature", key, headers(vectorID, vectorTimestamp, vectorSignature[:len(vectorSignature)-4]), vectorBody, "no valid v1 signature in webhook-signature"},
		{"not v1", key, headers(vectorID, vectorTimestamp, "v2,"+raw), vectorBody, "no valid v1 signature in webhook-signature"},
		{"no version", key, headers(vectorID, vectorTimestamp, raw), vectorBody, "no valid v1 signature in webhook-signature"},
		{"garbage", key, headers(vectorID, vectorTimestamp, "v1,!!!"), vectorBody, "no valid v1 signature in webhook-signature"},
		{"not canonical base64", key, headers(vectorID, vectorTimestamp, "v1,g0hM9SsE+OTPJTGt/tmIK\ntSyZlE3uFJELVlNIOLJ1OE="), vectorBody, "no valid v1 signature in webhook-signature"},
		{"several, the valid one last", key, headers(vectorID, vectorTimestamp, "v1,bm90IGl0 v2,"+raw+" v1a,x "+vectorSignature), vectorBody, ""},
		{"several, the valid one first", key, headers(vectorID, vectorTimestamp, vectorSignature+" v1,bm90IGl0"), vectorBody, ""},
		{"several, extra spaces", key, headers(vectorID, vectorTimestamp, "  v1,bm90IGl0   "+vectorSignature+"  "), vectorBody, ""},
		{"several, none valid", key, headers(vectorID, vectorTimestamp, "v1,bm90IGl0 v1,"+base64.StdEncoding.EncodeToString(make([]byte, 32))), vectorBody, "no valid v1 signature in webhook-signature"},
		{"SignAll, old key", key, headers(vectorID, vectorTimestamp, SignAll([][]byte{key, other}, vectorID, vectorTimestamp, body)), vectorBody, ""},
		{"SignAll, new key", other, headers(vectorID, vectorTimestamp, SignAll([][]byte{key, other}, vectorID, vectorTimestamp, body)), vectorBody, ""},
		{"SignAll, neither key", []byte("a third key"), headers(vectorID, vectorTimestamp, SignAll([][]byte{key, other}, vectorID, vectorTimestamp, body)), vectorBody, "no valid v1 signature in webhook-signature"},
	} {
		err := Verify(tc.key, tc.h, []byte(tc.body), vectorTime, DefaultTolerance)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr != "" && err == nil:
			t.Errorf("%s: verifies, want %q", tc.name, tc.wantErr)
		case tc.wantErr != "" && err.Error() != tc.wantErr:
			t.Errorf("%s: error %q, want %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestVerifyTolerance(t *testing.T) {
	t.Parallel()
	key := vectorKey(t)
	h := headers(vectorID, vectorTimestamp, vectorSignature)
	body := []byte(vectorBody)
	if err := Verify(key, h, body, vectorTime.Add(time.Minute), time.Minute); err != nil {
		t.Errorf("a minute old, tolerance a minute: %v", err)
	}
	if err := Verify(key, h, body, vectorTime.Add(time.Minute+time.Nanosecond), time.Minute); err == nil {
		t.Error("just over a minute old verifies with a minute of tolerance")
	}
	if err := Verify(key, h, body, vectorTime.Add(-time.Minute-time.Nanosecond), time.Minute); err == nil {
		t.Error("just over a minute in the future verifies with a minute of tolerance")
	}
	if err := Verify(key, h, body, vectorTime, 0); err != nil {
		t.Errorf("no tolerance, same second: %v", err)
	}
}

func TestSignAll(t *testing.T) {
	t.Parallel()
	k1, k2 := []byte("one"), []byte("two")
	body := []byte("{}")
	if got := SignAll(nil, "id", "1", body); got != "" {
		t.Errorf("no keys: %q", got)
	}
	if got, want := SignAll([][]byte{k1}, "id", "1", body), Sign(k1, "id", "1", body); got != want {
		t.Errorf("one key: %q, want %q", got, want)
	}
	if got, want := SignAll([][]byte{k1, k2}, "id", "1", body), Sign(k1, "id", "1", body)+" "+Sign(k2, "id", "1", body); got != want {
		t.Errorf("two keys: %q, want %q", got, want)
	}
}

// FuzzVerify checks that Verify never panics, accepts a header only when
// one of its signatures is exactly what Sign makes for the id, timestamp
// and body, and a timestamp only within the tolerance; and that what Sign
// makes verifies whenever the timestamp is within the tolerance.
func FuzzVerify(f *testing.F) {
	f.Add(vectorID, vectorTimestamp, vectorSignature, []byte(vectorBody))
	f.Add(vectorID, vectorTimestamp, "v1,bm90IGl0 "+vectorSignature, []byte(vectorBody))
	f.Add(vectorID, vectorTimestamp, "v1,"+strings.TrimPrefix(vectorSignature, "v1,")+"\n", []byte(vectorBody))
	f.Add(vectorID, "1614265030", vectorSignature, []byte(vectorBody))
	f.Add(vectorID, "+1614265330", vectorSignature, []byte(vectorBody))
	f.Add(vectorID, "-9223372036854775808", "v1,", []byte{})
	f.Add(vectorID, "9223372036854775807", "v1", []byte(nil))
	f.Add("", "", "", []byte(nil))
	f.Add("id", "x", "v1,!!! v2,, ,,,", []byte("body"))
	f.Add("a.b", "1614265330", "v1,=", []byte(".c"))
	key := vectorKey(f)
	now := vectorTime
	const tolerance = DefaultTolerance
	inTolerance := func(ts string) bool {
		secs, err := strconv.ParseInt(ts, 10, 64)
		lim := int64(tolerance / time.Second)
		return err == nil && secs >= now.Unix()-lim && secs <= now.Unix()+lim
	}
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(HeaderID, id)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		if err := Verify(key, h, body, now, tolerance); err == nil {
			if id == "" || !inTolerance(ts) {
				t.Fatalf("id %q, timestamp %q verify", id, ts)
			}
			want := Sign(key, id, ts, body)
			found := false
			for _, s := range strings.Fields(sig) {
				found = found || s == want
			}
			if !found {
				t.Fatalf("signature %q verifies; Sign made %q", sig, want)
			}
		}
		if id == "" || ts == "" {
			return
		}
		h.Set(HeaderSignature, Sign(key, id, ts, body))
		err := Verify(key, h, body, now, tolerance)
		if ok := inTolerance(ts); ok != (err == nil) {
			t.Fatalf("id %q, timestamp %q, Sign's own signature: %v (in tolerance: %v)", id, ts, err, ok)
		}
		h.Set(HeaderSignature, SignAll([][]byte{[]byte("old key"), key}, id, ts, body))
		if err2 := Verify(key, h, body, now, tolerance); (err == nil) != (err2 == nil) {
			t.Fatalf("id %q, timestamp %q: SignAll %v, Sign %v", id, ts, err2, err)
		}
	})
}
