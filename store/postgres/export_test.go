package postgres

// ListEventsSQL and StreamEventsSQL expose the statements of ListEvents and
// StreamEvents, for the plans of TestMillionEventPlans.
var (
	ListEventsSQL   = listEventsSQL
	StreamEventsSQL = streamEventsSQL
)

// RecentScan is how many of the newest events ListEvents scans first.
const RecentScan = recentScan
