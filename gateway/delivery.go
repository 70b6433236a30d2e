package gateway

import (
	"context"
	"strconv"
	"time"
)

// Delivery is the state of one event's delivery to one listener group.
type Delivery struct {
	// ID is the delivery's id (its River job id).
	ID          int64           `json:"id"`
	Service     string          `json:"service"`
	Listener    string          `json:"listener"`
	State       string          `json:"state"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts"`
	ScheduledAt time.Time       `json:"scheduled_at"`
	AttemptedAt *time.Time      `json:"attempted_at,omitempty"`
	FinalizedAt *time.Time      `json:"finalized_at,omitempty"`
	Errors      []DeliveryError `json:"errors"`
	// Batch marks the delivery of an event in a delivery batch (the
	// deliveries of several events to one group, queued by one
	// transaction): ID is the batch's, shared with the batch's other
	// events, and State, Attempt and the times are the batch's.
	Batch bool `json:"batch,omitempty"`
}

// Delivery states, as reported by GET /v1/events/{id}.
const (
	DeliveryPending   = "pending"
	DeliveryScheduled = "scheduled"
	DeliveryRunning   = "running"
	DeliveryRetryable = "retryable"
	DeliveryCompleted = "completed"
	DeliveryDead      = "dead"
	DeliveryCancelled = "cancelled"
)

// DeliveryError is one failed delivery attempt.
type DeliveryError struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Error   string    `json:"error"`
	// Status is the listener's HTTP status, 0 when it gave no answer.
	Status int `json:"status,omitempty"`
}

// DeliveryRecord is one delivery with the event it carries, as listed by the
// dead-letter routes and GET /v1/deliveries/{id}.
type DeliveryRecord struct {
	Delivery
	EventID string `json:"event_id"`
	// API and Event name the event; empty when the event was pruned.
	API   string `json:"api,omitempty"`
	Event string `json:"event,omitempty"`
	// EventIDs are, for a delivery batch, every event it holds, oldest
	// first; EventID, API and Event are then the first one's.
	EventIDs []string `json:"event_ids,omitempty"`
}

// DeliveryTarget is what a delivery needs: the event, the group's signing
// secret and policy, and the group's live endpoints.
type DeliveryTarget struct {
	Event     Event
	Secret    string
	Policy    DeliveryPolicy
	Endpoints []Endpoint
}

// Endpoint is where one worker serving a group takes its deliveries.
type Endpoint struct {
	WorkerID string
	URL      string
}

// ParseDeliveryID reads a delivery id.
func ParseDeliveryID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, Errorf(EInvalid, "%q is not a delivery id", s)
	}
	return id, nil
}

// Delivery returns one delivery with its attempts. Needs read. Errors:
// ENotFound, EUnavailable.
func (s *Service) Delivery(ctx context.Context, id int64) (*DeliveryRecord, error) {
	if err := s.authorize(ctx, ScopeRead, ""); err != nil {
		return nil, err
	}
	var d *DeliveryRecord
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		d, err = s.cfg.Listeners.GetDelivery(ctx, id)
		return err
	})
	return d, err
}

// RedriveDelivery gives a dead delivery a fresh allowance of attempts.
// Needs admin. Errors: ENotFound, EConflict (not dead), EUnavailable.
func (s *Service) RedriveDelivery(ctx context.Context, id int64) (*DeliveryRecord, error) {
	if err := s.authorize(ctx, ScopeAdmin, ""); err != nil {
		return nil, err
	}
	var d *DeliveryRecord
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		d, err = s.cfg.Listeners.RedriveDelivery(ctx, id)
		return err
	})
	return d, err
}
