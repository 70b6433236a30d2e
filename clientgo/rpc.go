package lightbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"
)

// HandlerFunc answers one RPC: it gets the call's parameters (a JSON
// object) and returns a result that encodes to JSON, or an error. See
// [Bus.Handle] for how errors reach the caller.
type HandlerFunc func(ctx context.Context, params json.RawMessage) (any, error)

// rpcDecl is the wire form of an RPC declaration.
type rpcDecl struct {
	Name         string          `json:"name"`
	ParamsSchema json.RawMessage `json:"params_schema,omitempty"`
	ResultSchema json.RawMessage `json:"result_schema,omitempty"`
	TimeoutMS    int64           `json:"timeout_ms,omitempty"`
}

// callGrace is how long past the RPC deadline the client waits for the
// gateway's own timeout answer when the context has no deadline.
const callGrace = 5 * time.Second

// Call calls the RPC name ("auth.check_password") with params, which must
// encode to a JSON object (nil sends {}), and decodes the result into result
// (a pointer; nil discards it).
//
// The call's deadline, sent as Lightbus-Timeout, is the sooner of the
// context's deadline and [Timeout] (or [WithCallTimeout]); with neither, the
// gateway applies the API's default. Errors answered by the gateway are
// *Error: CodeRemoteError (the handler failed; see ErrorType and Message),
// CodeNoWorker, CodeTimeout, CodeValidation, CodeInvalid, CodeNotFound,
// CodeUnknownAPI (an API the gateway has never heard of: a typo, most
// often), CodeBadGateway, ... A call is never retried: it may have run.
func (b *Bus) Call(ctx context.Context, name string, params, result any, opts ...CallOption) error {
	api, method, err := splitName("rpc", name, false)
	if err != nil {
		return fmt.Errorf("lightbus: call: %w", err)
	}
	body, err := encodeParams(params)
	if err != nil {
		return fmt.Errorf("lightbus: call %s: %w", name, err)
	}
	cc := callConfig{timeout: b.callTimeout}
	for _, opt := range opts {
		opt(&cc)
	}
	timeout := cc.timeout
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left <= 0 {
			return fmt.Errorf("lightbus: call %s: %w", name, context.DeadlineExceeded)
		}
		if timeout <= 0 || left < timeout {
			timeout = left
		}
	} else if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout+callGrace)
		defer cancel()
	}
	raw, err := chain(b.sendCall, b.callMW)(ctx, CallRequest{API: api, Method: method, Params: body, Timeout: timeout})
	if err != nil {
		return err
	}
	if result == nil {
		return nil
	}
	if len(raw) == 0 {
		raw = json.RawMessage("null")
	}
	if err := json.Unmarshal(raw, result); err != nil {
		return fmt.Errorf("lightbus: call %s: decoding the result %s: %w", name, snippet(raw), err)
	}
	return nil
}

// sendCall is the innermost CallFunc: it sends the call once.
func (b *Bus) sendCall(ctx context.Context, req CallRequest) (json.RawMessage, error) {
	header := http.Header{}
	if req.Timeout > 0 {
		header.Set("Lightbus-Timeout", formatTimeout(req.Timeout))
	}
	b.injectTrace(ctx, header)
	var out struct {
		Result json.RawMessage `json:"result"`
	}
	if err := b.do(ctx, http.MethodPost, "/v1/rpc/"+req.API+"/"+req.Method, nil, req.Params, header, &out); err != nil {
		return nil, fmt.Errorf("lightbus: call %s.%s: %w", req.API, req.Method, err)
	}
	return out.Result, nil
}

// formatTimeout renders d as a Go duration in whole milliseconds (at least
// 1ms), the form Lightbus-Timeout takes.
func formatTimeout(d time.Duration) string {
	return max(d.Truncate(time.Millisecond), time.Millisecond).String()
}

// encodeParams encodes params as the JSON object a fire or call sends.
func encodeParams(params any) ([]byte, error) {
	var data []byte
	switch p := params.(type) {
	case nil:
		return []byte("{}"), nil
	case json.RawMessage:
		data = p
	default:
		var err error
		if data, err = json.Marshal(params); err != nil {
			return nil, fmt.Errorf("encoding the parameters: %w", err)
		}
	}
	data = trimSpace(data)
	if string(data) == "null" {
		return []byte("{}"), nil
	}
	if len(data) == 0 || data[0] != '{' || !json.Valid(data) {
		return nil, fmt.Errorf("the parameters must be a JSON object, got %s", snippet(data))
	}
	return data, nil
}

func trimSpace(p []byte) []byte {
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	for len(p) > 0 && isSpace(p[0]) {
		p = p[1:]
	}
	for len(p) > 0 && isSpace(p[len(p)-1]) {
		p = p[:len(p)-1]
	}
	return p
}

// Handle registers h as the handler of the RPC name ("auth.check_password"),
// which declares the API and the RPC when the worker registers. It panics if
// name is not api.method or already has a handler: registering is set-up
// code, and a mistake there is a programming error.
//
// The worker first checks the request's Standard Webhooks signature with
// the secret the gateway granted at registration, and answers 401 when it
// is missing, wrong, for another procedure or older than
// webhook.DefaultTolerance. It names itself on every answer
// (Lightbus-Worker-Id). It answers the gateway:
//   - 200 {"result": ...} with what h returned;
//   - 400 invalid when the parameters are not a JSON object, or h's error
//     wraps [ErrInvalidParams] (with error_type and message named as
//     below, "InvalidParams" when nothing names it);
//   - 500 remote_error otherwise, with message err.Error() and error_type
//     naming the error: the ErrorType() of the first error in the chain that
//     has such a method (see [NewError]), else the name of the first exported
//     type found by unwrapping (*os.PathError gives "PathError"), else
//     "error" (errors.New, fmt.Errorf). A panic is recovered and answered
//     as error_type "panic".
//
// h's context ends at the caller's deadline (Lightbus-Deadline).
func (b *Bus) Handle(name string, h HandlerFunc, opts ...HandleOption) {
	b.handle(name, h, rpcDecl{}, opts)
}

func (b *Bus) handle(name string, h HandlerFunc, decl rpcDecl, opts []HandleOption) {
	api, method := mustSplitName("rpc", name, false)
	if h == nil {
		panic("lightbus: Handle " + name + ": nil handler")
	}
	decl.Name = method
	for _, opt := range opts {
		opt(&decl)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, dup := b.rpcs[name]; dup {
		panic("lightbus: Handle " + name + ": already handled")
	}
	b.rpcs[name] = h
	b.api(api).rpcs[method] = decl
}

// api returns the declaration state of an API, creating it. b.mu is held.
func (b *Bus) api(name string) *apiState {
	a := b.apis[name]
	if a == nil {
		a = &apiState{events: map[string]eventDecl{}, rpcs: map[string]rpcDecl{}}
		b.apis[name] = a
	}
	return a
}

// serveRPC answers POST /lightbus/rpc/{api}/{method}, after checking that
// the gateway signed it for this procedure.
func (b *Bus) serveRPC(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(headerWorkerID, b.workerID)
	api, method := r.PathValue("api"), r.PathValue("method")
	name := api + "." + method
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	if !b.verifyGateway(w, r, body, b.rpcSigningKey(r.Context()), api+"/"+method+"/", "rpc", "rpc", name, "request_id", r.Header.Get("Lightbus-Request-Id")) {
		return
	}
	b.mu.RLock()
	h := b.rpcs[name]
	b.mu.RUnlock()
	if !b.runs(FeatureRPCs) {
		h = nil
	}
	if h == nil {
		writeProblem(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("this worker does not serve rpc %s", name), nil)
		return
	}
	ctx := b.extractTrace(r.Context(), r.Header)
	if s := r.Header.Get("Lightbus-Deadline"); s != "" {
		dl, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			writeProblem(w, http.StatusBadRequest, CodeInvalid, fmt.Sprintf("bad Lightbus-Deadline %q: want an RFC 3339 time", s), nil)
			return
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
	}
	params, ok := objectParams(w, body)
	if !ok {
		return
	}
	// Wait for a free slot until the deadline.
	select {
	case b.slots <- struct{}{}:
		defer func() { <-b.slots }()
	case <-ctx.Done():
		writeProblem(w, http.StatusServiceUnavailable, CodeUnavailable, "the worker is busy: no handler slot freed before the deadline", nil)
		return
	}
	info := RPCInfo{API: api, Method: method, RequestID: r.Header.Get("Lightbus-Request-Id")}
	info.Deadline, _ = ctx.Deadline()
	ctx = context.WithValue(ctx, rpcKey{}, info)
	log := b.log.With("rpc", name, "request_id", info.RequestID)
	start := time.Now()
	result, err := callHandler(ctx, chain(h, b.rpcMW), params)
	if err == nil {
		var data []byte
		if data, err = json.Marshal(struct {
			Result any `json:"result"`
		}{result}); err == nil {
			log.Debug("lightbus: rpc answered", "duration", time.Since(start))
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(data)
			return
		}
		err = fmt.Errorf("encoding the result: %w", err)
	}
	if errors.Is(err, ErrInvalidParams) {
		log.Info("lightbus: rpc rejected its parameters", "error", err)
		writeProblem(w, http.StatusBadRequest, CodeInvalid, err.Error(), invalidParamsExtra(err))
		return
	}
	typ := errorType(err)
	logHandlerError(log, "lightbus: rpc handler failed", typ, err, time.Since(start))
	writeProblem(w, http.StatusInternalServerError, CodeRemoteError, fmt.Sprintf("%s failed: %s: %s", name, typ, err), map[string]any{
		"error_type": typ,
		"message":    err.Error(),
	})
}

// panicError is a recovered panic.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string     { return fmt.Sprintf("panic: %v", p.value) }
func (p *panicError) ErrorType() string { return "panic" }

// callHandler runs h, turning a panic into an error.
func callHandler(ctx context.Context, h HandlerFunc, params json.RawMessage) (result any, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return h(ctx, params)
}

// logHandlerError logs a failed handler, with the stack of a panic.
func logHandlerError(log *slog.Logger, msg, typ string, err error, took time.Duration) {
	attrs := []any{"error_type", typ, "error", err, "duration", took}
	var p *panicError
	if errors.As(err, &p) {
		attrs = append(attrs, "stack", string(p.stack))
	}
	log.Error(msg, attrs...)
}
