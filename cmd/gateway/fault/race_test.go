//go:build race

package fault

// With the race detector on, the gateway under test is built with it too,
// and a data race reported in its log fails the scenario.
func init() { raceBuild = true }
