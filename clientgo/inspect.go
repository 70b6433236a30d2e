package lightbus

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// StoredEvent is an event as the gateway stored it.
type StoredEvent struct {
	// ID is the event's id, a UUIDv7.
	ID string `json:"id"`
	// API is the event's API.
	API string `json:"api"`
	// Event is the event's name.
	Event string `json:"event"`
	// Params are the event's parameters as fired.
	Params json.RawMessage `json:"params"`
	// CreatedAt is when the event was stored.
	CreatedAt time.Time `json:"created_at"`
	// TraceParent and TraceState are the W3C trace context the event was
	// fired in, sent on each of its deliveries; empty when it had none.
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
	// Deliveries are the event's deliveries, one per listener group; only
	// [Bus.Event] fills them in.
	Deliveries []Delivery `json:"deliveries,omitempty"`
}

// Delivery is the delivery of one event to one listener group.
type Delivery struct {
	// ID is the delivery's id, for [Bus.Delivery] and [Bus.Redrive].
	ID int64 `json:"id"`
	// Service is the listener group's service.
	Service string `json:"service"`
	// Listener is the listener group's name.
	Listener string `json:"listener"`
	// State is one of pending, scheduled, running, retryable, completed,
	// dead and cancelled.
	State string `json:"state"`
	// Attempt is the number of attempts made so far.
	Attempt int `json:"attempt"`
	// MaxAttempts is the group's maximum; after it the delivery is dead.
	MaxAttempts int `json:"max_attempts"`
	// ScheduledAt is when the next (or last) attempt is (or was) due.
	ScheduledAt time.Time `json:"scheduled_at"`
	// AttemptedAt is when the latest attempt started; zero before the first.
	AttemptedAt time.Time `json:"attempted_at,omitzero"`
	// FinalizedAt is when the delivery completed, died or was cancelled.
	FinalizedAt time.Time `json:"finalized_at,omitzero"`
	// Errors lists each failed attempt.
	Errors []DeliveryError `json:"errors"`
	// Batch marks an event's delivery in a delivery batch (the deliveries
	// of several events to one group, queued by one transaction): ID is
	// the batch's, and State, Attempt and the times are the batch's. A
	// failed delivery of a batch becomes a delivery of its own.
	Batch bool `json:"batch,omitempty"`
}

// DeliveryError is one failed delivery attempt.
type DeliveryError struct {
	// Attempt is the attempt's number.
	Attempt int `json:"attempt"`
	// At is when it failed.
	At time.Time `json:"at"`
	// Error says how, e.g. "listener answered 500: boom".
	Error string `json:"error"`
	// Status is the listener's HTTP status; 0 when it gave no answer.
	Status int `json:"status,omitempty"`
}

// EventQuery selects stored events for [Bus.Events]; zero fields do not
// filter.
type EventQuery struct {
	// API keeps only events of this API, or of the APIs matching this
	// glob ("auth.*": '*' stands for any run of characters).
	API string
	// Event keeps only events with this name, or matching this glob
	// ("user_*").
	Event string
	// Where keeps only events whose parameters meet every condition:
	// "address.city=London", "total>=100", "plan!=null" (see the
	// gateway's docs/INSPECTING.md).
	Where []string
	// Since keeps only events created at or after it.
	Since time.Time
	// Until keeps only events created before it.
	Until time.Time
	// Before is the cursor: only events older than this event id. Pass the
	// previous page's NextCursor.
	Before string
	// Limit is the page size, 1 to 1000 (the gateway's default is 100).
	Limit int
}

// EventPage is one page of stored events, newest first.
type EventPage struct {
	// Events are the page's events.
	Events []StoredEvent `json:"events"`
	// NextCursor is the Before of the next page; empty on the last page.
	NextCursor string `json:"next_cursor"`
}

// Workers lists the live workers (GET /v1/workers).
func (b *Bus) Workers(ctx context.Context) ([]Worker, error) {
	var out struct {
		Workers []Worker `json:"workers"`
	}
	if err := b.do(ctx, http.MethodGet, "/v1/workers", nil, nil, nil, &out); err != nil {
		return nil, fmt.Errorf("lightbus: list workers: %w", err)
	}
	return out.Workers, nil
}

// Events lists stored events, newest first (GET /v1/events). Page through
// them by passing each page's NextCursor as the next query's Before.
func (b *Bus) Events(ctx context.Context, q EventQuery) (*EventPage, error) {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("api", q.API)
	set("event", q.Event)
	set("before", q.Before)
	for _, w := range q.Where {
		v.Add("where", w)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var page EventPage
	if err := b.do(ctx, http.MethodGet, "/v1/events", v, nil, nil, &page); err != nil {
		return nil, fmt.Errorf("lightbus: list events: %w", err)
	}
	return &page, nil
}

// Event returns one stored event with its deliveries (GET /v1/events/{id});
// an unknown id is an *Error with CodeNotFound.
func (b *Bus) Event(ctx context.Context, id string) (*StoredEvent, error) {
	var ev StoredEvent
	if err := b.do(ctx, http.MethodGet, "/v1/events/"+url.PathEscape(id), nil, nil, nil, &ev); err != nil {
		return nil, fmt.Errorf("lightbus: get event %s: %w", id, err)
	}
	return &ev, nil
}

// Schema is one version of an API's schema as the gateway stores it.
type Schema struct {
	// API is the API's name.
	API string `json:"api"`
	// Version numbers the API's schema versions from 1; a new one is made
	// each time the content changes.
	Version int `json:"version"`
	// Hash is the hex SHA-256 of Document.
	Hash string `json:"hash"`
	// Service is the service that published the version ("" if unknown).
	Service string `json:"service"`
	// WorkerID is the worker whose registration published it ("" when it
	// was published with [Bus.PublishSchema]).
	WorkerID string `json:"worker_id,omitempty"`
	// CreatedAt is when the version was stored.
	CreatedAt time.Time `json:"created_at"`
	// Document is the schema document, in canonical form:
	// {"api": ..., "events": {name: {"params_schema": ...}}, "rpcs": {name:
	// {"params_schema": ..., "result_schema": ...}}, "validate": bool}.
	// [Bus.ListSchemaVersions] leaves it out.
	Document json.RawMessage `json:"schema,omitempty"`
	// Conflicts lists the live workers that declare another schema for the
	// API; only [Bus.Schema] fills it in, for the current version.
	Conflicts []SchemaConflict `json:"conflicts,omitempty"`
}

// SchemaConflict is a live worker whose declared schema for an API differs
// from the API's current version.
type SchemaConflict struct {
	// API is the API's name.
	API string `json:"api"`
	// WorkerID is the disagreeing worker.
	WorkerID string `json:"worker_id"`
	// Service is the worker's service.
	Service string `json:"service"`
	// Hash is the hash of the schema the worker declares.
	Hash string `json:"hash"`
}

// Schemas returns the current schema of every API (GET /v1/schema), by
// API name.
func (b *Bus) Schemas(ctx context.Context) ([]Schema, error) {
	var out struct {
		Schemas []Schema `json:"schemas"`
	}
	if err := b.do(ctx, http.MethodGet, "/v1/schema", nil, nil, nil, &out); err != nil {
		return nil, fmt.Errorf("lightbus: list schemas: %w", err)
	}
	return out.Schemas, nil
}

// Schema returns the current schema of api, with the live workers that
// disagree with it (GET /v1/schema/{api}). An API without a schema is an
// *Error with CodeNotFound.
func (b *Bus) Schema(ctx context.Context, api string) (*Schema, error) {
	return b.getSchema(ctx, api, nil)
}

// SchemaVersion returns version (from 1) of api's schema (GET
// /v1/schema/{api}?version=N); an unknown version is an *Error with
// CodeNotFound.
func (b *Bus) SchemaVersion(ctx context.Context, api string, version int) (*Schema, error) {
	return b.getSchema(ctx, api, url.Values{"version": {strconv.Itoa(version)}})
}

func (b *Bus) getSchema(ctx context.Context, api string, q url.Values) (*Schema, error) {
	var s Schema
	if err := b.do(ctx, http.MethodGet, "/v1/schema/"+url.PathEscape(api), q, nil, nil, &s); err != nil {
		return nil, fmt.Errorf("lightbus: get schema %s: %w", api, err)
	}
	return &s, nil
}

// ListSchemaVersions lists the versions of api's schema, newest first,
// without their documents (GET /v1/schema/{api}/versions).
func (b *Bus) ListSchemaVersions(ctx context.Context, api string) ([]Schema, error) {
	var out struct {
		Versions []Schema `json:"versions"`
	}
	if err := b.do(ctx, http.MethodGet, "/v1/schema/"+url.PathEscape(api)+"/versions", nil, nil, nil, &out); err != nil {
		return nil, fmt.Errorf("lightbus: list schema versions of %s: %w", api, err)
	}
	return out.Versions, nil
}

// PublishSchema stores doc, a schema document (see [Schema.Document]; its
// "api" member may be left out), as api's current schema (PUT
// /v1/schema/{api}), for a service that publishes its schema without
// running a worker. It returns the current version, which is a new one
// unless the content is unchanged. The service this Bus belongs to, if
// any, is recorded as the publisher. A schema that does not compile is an
// *Error with CodeInvalid.
func (b *Bus) PublishSchema(ctx context.Context, api string, doc json.RawMessage) (*Schema, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(doc, &fields); err != nil {
		return nil, fmt.Errorf("lightbus: publish schema %s: the document is not a JSON object: %w", api, err)
	}
	if _, ok := fields["service"]; !ok && b.service != "" {
		fields["service"], _ = json.Marshal(b.service)
	}
	body, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("lightbus: publish schema %s: %w", api, err)
	}
	var s Schema
	if err := b.do(ctx, http.MethodPut, "/v1/schema/"+url.PathEscape(api), nil, body, nil, &s); err != nil {
		return nil, fmt.Errorf("lightbus: publish schema %s: %w", api, err)
	}
	return &s, nil
}

// DeliveryRecord is a delivery with the event it carries.
type DeliveryRecord struct {
	Delivery
	// EventID is the event's id.
	EventID string `json:"event_id"`
	// API and Event name the event; empty when the event was pruned.
	API   string `json:"api,omitempty"`
	Event string `json:"event,omitempty"`
	// EventIDs are, for a delivery batch, every event it holds, oldest
	// first; EventID, API and Event are then the first one's.
	EventIDs []string `json:"event_ids,omitempty"`
}

// DeadQuery selects a listener group's dead deliveries for
// [Bus.DeadLetters] and [Bus.RedriveAll]; zero fields do not filter.
type DeadQuery struct {
	// API keeps only deliveries of events of this API.
	API string
	// Event keeps only deliveries of events with this name.
	Event string
	// Since keeps only deliveries that died at or after it.
	Since time.Time
	// Until keeps only deliveries that died before it.
	Until time.Time
	// Before is the cursor: only deliveries with a smaller id. Pass the
	// previous page's NextCursor. RedriveAll ignores it.
	Before string
	// Limit is the page size, 1 to 1000 (the gateway's default is 100).
	// RedriveAll ignores it.
	Limit int
}

// DeadPage is one page of dead deliveries, newest first.
type DeadPage struct {
	// Deliveries are the page's deliveries.
	Deliveries []DeliveryRecord `json:"deliveries"`
	// NextCursor is the Before of the next page; empty on the last page.
	NextCursor string `json:"next_cursor"`
}

func groupPath(service, listener string) string {
	return "/v1/listeners/" + url.PathEscape(service) + "/" + url.PathEscape(listener)
}

func formatTimeOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// DeadLetters lists the dead deliveries of the listener group
// (service, listener), newest first
// (GET /v1/listeners/{service}/{listener}/dead).
func (b *Bus) DeadLetters(ctx context.Context, service, listener string, q DeadQuery) (*DeadPage, error) {
	v := url.Values{}
	for k, s := range map[string]string{"api": q.API, "event": q.Event, "before": q.Before,
		"since": formatTimeOrEmpty(q.Since), "until": formatTimeOrEmpty(q.Until)} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var page DeadPage
	if err := b.do(ctx, http.MethodGet, groupPath(service, listener)+"/dead", v, nil, nil, &page); err != nil {
		return nil, fmt.Errorf("lightbus: list dead deliveries of %s.%s: %w", service, listener, err)
	}
	return &page, nil
}

// Delivery returns one delivery with its attempt history
// (GET /v1/deliveries/{id}).
func (b *Bus) Delivery(ctx context.Context, id int64) (*DeliveryRecord, error) {
	var d DeliveryRecord
	if err := b.do(ctx, http.MethodGet, "/v1/deliveries/"+strconv.FormatInt(id, 10), nil, nil, nil, &d); err != nil {
		return nil, fmt.Errorf("lightbus: get delivery %d: %w", id, err)
	}
	return &d, nil
}

// Redrive gives a dead delivery a fresh allowance of its group's attempts
// (POST /v1/deliveries/{id}/redrive). A delivery that is not dead is an
// *Error with CodeConflict.
func (b *Bus) Redrive(ctx context.Context, id int64) (*DeliveryRecord, error) {
	var d DeliveryRecord
	if err := b.do(ctx, http.MethodPost, "/v1/deliveries/"+strconv.FormatInt(id, 10)+"/redrive", nil, nil, nil, &d); err != nil {
		return nil, fmt.Errorf("lightbus: redrive delivery %d: %w", id, err)
	}
	return &d, nil
}

// RedriveAll redrives every dead delivery of the listener group matching q's
// filters and returns how many
// (POST /v1/listeners/{service}/{listener}/redrive).
func (b *Bus) RedriveAll(ctx context.Context, service, listener string, q DeadQuery) (int, error) {
	body, err := json.Marshal(struct {
		API   string `json:"api,omitempty"`
		Event string `json:"event,omitempty"`
		Since string `json:"since,omitempty"`
		Until string `json:"until,omitempty"`
	}{q.API, q.Event, formatTimeOrEmpty(q.Since), formatTimeOrEmpty(q.Until)})
	if err != nil {
		return 0, err
	}
	var out struct {
		Redriven int `json:"redriven"`
	}
	if err := b.do(ctx, http.MethodPost, groupPath(service, listener)+"/redrive", nil, body, nil, &out); err != nil {
		return 0, fmt.Errorf("lightbus: redrive dead deliveries of %s.%s: %w", service, listener, err)
	}
	return out.Redriven, nil
}

// ListenerStatus is a listener group with the state of its deliveries.
type ListenerStatus struct {
	// Service and Name identify the group.
	Service string `json:"service"`
	Name    string `json:"name"`
	// Events are the group's subscriptions.
	Events []string `json:"events"`
	// Endpoints is the number of live endpoints serving the group.
	Endpoints int `json:"endpoints"`
	// Policy is the group's delivery policy as its latest registration
	// set it; zero fields are the gateway's defaults.
	Policy Policy `json:"policy"`
	// Pending counts deliveries waiting for an attempt.
	Pending int64 `json:"pending"`
	// InFlight counts deliveries being attempted now.
	InFlight int64 `json:"in_flight"`
	// Dead counts dead deliveries.
	Dead int64 `json:"dead"`
	// OldestUndelivered is when the oldest event not yet delivered was
	// fired; zero when the group is caught up.
	OldestUndelivered time.Time `json:"oldest_undelivered,omitzero"`
	// LagMS is that event's age in milliseconds.
	LagMS int64 `json:"lag_ms"`
	// Replay is the group's latest replay, if any.
	Replay *Replay `json:"replay,omitempty"`
}

// Lag returns the age of the oldest event the group has not yet received.
func (l ListenerStatus) Lag() time.Duration { return time.Duration(l.LagMS) * time.Millisecond }

// Listeners lists every listener group with its delivery counts and lag
// (GET /v1/listeners).
func (b *Bus) Listeners(ctx context.Context) ([]ListenerStatus, error) {
	var out struct {
		Listeners []ListenerStatus `json:"listeners"`
	}
	if err := b.do(ctx, http.MethodGet, "/v1/listeners", nil, nil, nil, &out); err != nil {
		return nil, fmt.Errorf("lightbus: list listeners: %w", err)
	}
	return out.Listeners, nil
}

// DeleteListener removes the listener group (service, listener) with its
// subscriptions (DELETE /v1/listeners/{service}/{listener}): nothing is
// queued for it afterwards. An unknown group is an *Error with
// CodeNotFound; a group a live worker serves is one with CodeConflict.
func (b *Bus) DeleteListener(ctx context.Context, service, listener string) error {
	if err := b.do(ctx, http.MethodDelete, groupPath(service, listener), nil, nil, nil, nil); err != nil {
		return fmt.Errorf("lightbus: delete listener %s.%s: %w", service, listener, err)
	}
	return nil
}

// Replay is a replay of a listener group's deliveries, with its progress.
type Replay struct {
	// ID is the replay's id.
	ID int64 `json:"id"`
	// Service and Listener name the group.
	Service  string `json:"service"`
	Listener string `json:"listener"`
	// FromID and Since are where it starts; both empty for the earliest
	// retained event.
	FromID string    `json:"from_id,omitempty"`
	Since  time.Time `json:"since,omitzero"`
	// Until is where it stops.
	Until time.Time `json:"until"`
	// Redeliver is true for a rewind: events already delivered are
	// delivered again.
	Redeliver bool `json:"redeliver"`
	// Cursor is the last event id it has gone past.
	Cursor string `json:"cursor,omitempty"`
	// Queued counts the deliveries queued so far.
	Queued int64 `json:"queued"`
	// State is running or done.
	State string `json:"state"`
	// CreatedAt and FinishedAt are when it started and finished.
	CreatedAt  time.Time `json:"created_at"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
}

// Replay rewinds the listener group (service, listener): every retained
// event it subscribes to from since ("earliest", an RFC 3339 time or an
// event id) is delivered again
// (POST /v1/listeners/{service}/{listener}/replay). The replay runs in the
// background; [Bus.Listeners] shows its progress.
func (b *Bus) Replay(ctx context.Context, service, listener, since string) (*Replay, error) {
	body, err := json.Marshal(map[string]string{"since": since})
	if err != nil {
		return nil, err
	}
	var rp Replay
	if err := b.do(ctx, http.MethodPost, groupPath(service, listener)+"/replay", nil, body, nil, &rp); err != nil {
		return nil, fmt.Errorf("lightbus: replay %s.%s: %w", service, listener, err)
	}
	return &rp, nil
}
