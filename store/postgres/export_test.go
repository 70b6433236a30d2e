package postgres

import "github.com/lightbus-go/lightbus/gateway"

// ListEventsSQL and StreamEventsSQL expose the statements of ListEvents and
// StreamEvents, for the plans of TestMillionEventPlans.
var (
	ListEventsSQL   = listEventsSQL
	StreamEventsSQL = streamEventsSQL
)

// RecentScan is how many of the newest events ListEvents scans first.
const RecentScan = recentScan

// ReadEvents reads the events ids with one statement, as concurrent
// deliveries share a read (an id alone takes the statement for one).
func ReadEvents(db *DB, ids []string) ([]*gateway.Event, error) {
	batch := make([]*eventReq, len(ids))
	for i, id := range ids {
		batch[i] = &eventReq{id: id, done: make(chan struct{})}
	}
	db.events.read(batch)
	evs := make([]*gateway.Event, len(ids))
	for i, r := range batch {
		if r.err != nil {
			return nil, r.err
		}
		evs[i] = r.ev
	}
	return evs, nil
}

// EventKept and KeptInRangeSQL are the two forms of what retention keeps,
// for TestKeptInRangeAgrees.
var (
	EventKept      = eventKept
	KeptInRangeSQL = keptInRangeSQL
)
