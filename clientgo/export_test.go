package lightbus

// StartExampleGateway starts the fake gateway that the examples (package
// lightbus_test) run against and returns its URL and a function that stops
// it.
func StartExampleGateway() (url string, stop func()) {
	f := startFakeGateway()
	return f.URL(), f.srv.Close
}
