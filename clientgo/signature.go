package lightbus

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// signatureTolerance is how far webhook-timestamp may be from the worker's
// clock, either way.
const signatureTolerance = 5 * time.Minute

// decodeSecret returns the key of a Standard Webhooks secret "whsec_<base64>".
func decodeSecret(secret string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || len(key) == 0 {
		return nil, errors.New("bad signing secret: want whsec_ and base64")
	}
	return key, nil
}

// sign returns the Standard Webhooks v1 signature of a delivery:
// base64(HMAC-SHA256(key, id.timestamp.body)).
func sign(key []byte, id, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// verifySignature checks a delivery's webhook-id, webhook-timestamp and
// webhook-signature headers against key. The signature header may hold
// several space-separated signatures; one matching v1 signature suffices.
func verifySignature(key []byte, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook-id, webhook-timestamp or webhook-signature")
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("bad webhook-timestamp %q", ts)
	}
	if d := now.Sub(time.Unix(secs, 0)); d > signatureTolerance || d < -signatureTolerance {
		return fmt.Errorf("webhook-timestamp %s is more than %s from now", ts, signatureTolerance)
	}
	want, _ := base64.StdEncoding.DecodeString(sign(key, id, ts, body))
	for s := range strings.FieldsSeq(sigs) {
		version, sig, _ := strings.Cut(s, ",")
		got, err := base64.StdEncoding.DecodeString(sig)
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no valid v1 signature in webhook-signature")
}
