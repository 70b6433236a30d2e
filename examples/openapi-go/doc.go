// Package lightbusapi is a Lightbus gateway client generated from the
// repository's openapi.yaml by oapi-codegen with its plain configuration
// (models and client, nothing overridden): what any Go program gets from
// the spec alone, without the clientgo package.
//
// The generator's version is pinned by the tool directive in go.mod.
// Regenerate after changing openapi.yaml with
//
//	go generate ./examples/openapi-go
//
// TestGeneratedClientCurrent fails while the committed client is not the
// one the current spec generates.
package lightbusapi

//go:generate go tool oapi-codegen -config oapi-codegen.yaml ../../openapi.yaml
