package lightbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/lightbus-go/lightbus/internal/webhook"
)

// headerWorkerID is the header in which the worker names itself on every
// answer to the gateway; the gateway takes an RPC answer only from the
// worker it called.
const headerWorkerID = "Lightbus-Worker-Id"

// maxRequestBytes bounds the bodies the worker accepts from the gateway.
const maxRequestBytes = 32 << 20

// problemTitles are the titles of the problems a worker answers with.
var problemTitles = map[string]string{
	CodeInvalid:      "Invalid request",
	CodeUnauthorized: "Unauthorized",
	CodeNotFound:     "Not found",
	CodeTooLarge:     "Request too large",
	CodeRemoteError:  "Remote error",
	CodeUnavailable:  "Unavailable",
}

// writeProblem answers with a problem document; extra adds members such as
// error_type and message.
func writeProblem(w http.ResponseWriter, status int, code, detail string, extra map[string]any) {
	doc := map[string]any{
		"type":   problemTypePrefix + code,
		"title":  problemTitles[code],
		"status": status,
		"detail": detail,
		"code":   code,
	}
	for k, v := range extra {
		doc[k] = v
	}
	data, _ := json.Marshal(doc) // only strings and ints: cannot fail
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// readBody reads a request body of at most maxRequestBytes, answering the
// problem itself when it cannot.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeProblem(w, http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("the body is over %d bytes", maxRequestBytes), nil)
			return nil, false
		}
		writeProblem(w, http.StatusBadRequest, CodeInvalid, "reading the body: "+err.Error(), nil)
		return nil, false
	}
	return data, true
}

// objectParams checks that a body read with readBody is a JSON object,
// answering the problem itself when it is not.
func objectParams(w http.ResponseWriter, data []byte) (json.RawMessage, bool) {
	data = trimSpace(data)
	if len(data) == 0 || data[0] != '{' || !json.Valid(data) {
		writeProblem(w, http.StatusBadRequest, CodeInvalid, "the parameters must be a JSON object", nil)
		return nil, false
	}
	return data, true
}

// verifyGateway checks that a request comes from the gateway, for RPCs and
// deliveries alike: a Standard Webhooks signature (webhook-id,
// webhook-timestamp, webhook-signature) over body with key, a timestamp
// within webhook.DefaultTolerance of now, and a webhook-id starting with
// idPrefix (for an RPC, "{api}/{method}/": the signature is for this
// procedure). It answers the problem itself and reports false when the
// request is unsigned, forged or stale (401 unauthorized), or when the
// worker has no key yet (503, Retry-After). what names the request in
// answers; logAttrs are logged with a rejection.
func (b *Bus) verifyGateway(w http.ResponseWriter, r *http.Request, body, key []byte, idPrefix, what string, logAttrs ...any) bool {
	if key == nil {
		// Requests reach a worker only after its registration; this one
		// raced the registration's answer.
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, CodeUnavailable, "the worker has not received the "+what+" signing secret yet", nil)
		return false
	}
	err := webhook.Verify(key, r.Header, body, time.Now(), webhook.DefaultTolerance)
	if id := r.Header.Get(webhook.HeaderID); err == nil && !strings.HasPrefix(id, idPrefix) {
		err = fmt.Errorf("webhook-id %q is not for %s", id, strings.TrimSuffix(idPrefix, "/"))
	}
	if err != nil {
		b.log.Warn("lightbus: rejected a request without a valid gateway signature", append(logAttrs, "error", err)...)
		writeProblem(w, http.StatusUnauthorized, CodeUnauthorized, "bad "+what+" signature: "+err.Error(), nil)
		return false
	}
	return true
}

// rpcKeyWait is how long an RPC that arrives before the worker's first
// registration answer waits for the key it brings.
const rpcKeyWait = 2 * time.Second

// rpcSigningKey returns the key RPC requests are signed with, waiting up to
// rpcKeyWait (within ctx) for the first registration to bring it; nil when
// none came.
func (b *Bus) rpcSigningKey(ctx context.Context) []byte {
	b.mu.RLock()
	key, ready := b.rpcKey, b.rpcKeyReady
	b.mu.RUnlock()
	if key != nil {
		return key
	}
	t := time.NewTimer(rpcKeyWait)
	defer t.Stop()
	select {
	case <-ready:
	case <-t.C:
	case <-ctx.Done():
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.rpcKey
}

// setRPCKey keeps the RPC signing secret of a registration answer. b.mu is
// held.
func (b *Bus) setRPCKey(secret string) {
	if secret == "" {
		b.log.Error("lightbus: the gateway granted no RPC signing secret: RPCs will be refused (the gateway is older than this worker)")
		return
	}
	key, err := webhook.DecodeSecret(secret)
	if err != nil {
		b.log.Error("lightbus: the gateway granted a bad RPC signing secret", "error", err)
		return
	}
	if b.rpcKey == nil {
		close(b.rpcKeyReady)
	}
	b.rpcKey = key
}
