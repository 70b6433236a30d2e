// Package webhook signs and verifies Standard Webhooks
// (https://www.standardwebhooks.com) deliveries: the gateway signs each
// event delivery with a listener group's secret, and the Go client's worker
// verifies it, so both use this one implementation.
//
// A secret is "whsec_" followed by the base64 of its key. A signature is
// "v1," followed by the base64 of HMAC-SHA256(key, id + "." + timestamp +
// "." + body), where id and timestamp are the values of the webhook-id and
// webhook-timestamp headers (the timestamp in Unix seconds). The
// webhook-signature header holds one or more signatures separated by
// spaces; one valid signature suffices, which lets a sender sign with an
// old and a new secret while the secret is being rotated (see [SignAll]).
package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The Standard Webhooks headers of a delivery, in canonical form (so that
// they can index an http.Header directly).
const (
	HeaderID        = "Webhook-Id"
	HeaderTimestamp = "Webhook-Timestamp"
	HeaderSignature = "Webhook-Signature"
)

// SecretPrefix starts every signing secret.
const SecretPrefix = "whsec_"

// DefaultTolerance is how far a delivery's webhook-timestamp may be from the
// receiver's clock, either way, in the Standard Webhooks recommendation.
const DefaultTolerance = 5 * time.Minute

// NewSecret returns a fresh signing secret: "whsec_" and the base64 of 32
// random bytes.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// DecodeSecret returns the key of a secret "whsec_<base64>" (the prefix may
// be left out). An empty key is refused: anyone could sign with it.
func DecodeSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil || len(key) == 0 {
		return nil, errors.New("bad signing secret: want whsec_ and base64")
	}
	return key, nil
}

// Sign returns the signature of body for message id and timestamp,
// "v1,<base64 of HMAC-SHA256(key, id.timestamp.body)>": a value for the
// webhook-signature header.
func Sign(key []byte, id, timestamp string, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, timestamp, body))
}

// SignSecret is [Sign] with the key of secret (see [DecodeSecret]).
func SignSecret(secret, id, timestamp string, body []byte) (string, error) {
	key, err := DecodeSecret(secret)
	if err != nil {
		return "", err
	}
	return Sign(key, id, timestamp, body), nil
}

// SignAll returns the signatures of body with each of keys, in order and
// separated by spaces: a webhook-signature header that verifies with any of
// the keys, for while a secret is being replaced. No keys give "".
func SignAll(keys [][]byte, id, timestamp string, body []byte) string {
	var b strings.Builder
	for i, key := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(Sign(key, id, timestamp, body))
	}
	return b.String()
}

func mac(key []byte, id, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks a delivery's webhook-id, webhook-timestamp and
// webhook-signature headers and its body against key. The timestamp must
// be within tolerance of now, either way. The signature header may hold
// several space-separated signatures; one v1 signature equal to what
// [Sign] makes suffices (compared in constant time). Other versions and
// malformed entries are skipped.
func Verify(key []byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if len(key) == 0 {
		return errors.New("no signing key")
	}
	id, ts, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("bad webhook-timestamp %q", ts)
	}
	if d := now.Sub(time.Unix(secs, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook-timestamp %s is more than %s from now", ts, tolerance)
	}
	// Compare the base64 text, not its decoding: only the canonical
	// encoding Sign makes is accepted (a decoder would also take line
	// breaks and non-zero padding bits).
	want := []byte(Sign(key, id, ts, body))
	for s := range strings.FieldsSeq(sigs) {
		if hmac.Equal([]byte(s), want) {
			return nil
		}
	}
	return errors.New("no valid v1 signature in webhook-signature")
}
