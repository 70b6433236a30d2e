// Package deploy holds what runs the gateway elsewhere: the Helm chart in
// helm/lightbus-gateway (with example values and Secret in examples), the
// Grafana dashboard and the Prometheus alert rules. It is a module of its
// own so that the chart's test, which renders the chart with Helm's engine
// and decodes every manifest with the Kubernetes API types, adds nothing to
// the gateway's dependencies. Its only code is that test.
package deploy
