package httpapi

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"gopkg.in/yaml.v3"
)

// The route table and openapi.yaml describe the same routes, both ways.
func TestRoutesMatchOpenAPI(t *testing.T) {
	t.Parallel()

	var spec struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	readSpec(t, &spec)
	inSpec := map[string]bool{}
	for path, item := range spec.Paths {
		for method := range item {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
				inSpec[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	routes := New(Config{}).Routes() // the route table needs no service
	inRouter := map[string]bool{}
	err := chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if strings.HasPrefix(route, "/admin/") {
			// The River UI (and any operator's page under /admin/) is not
			// part of the JSON API that openapi.yaml describes.
			return nil
		}
		inRouter[method+" "+route] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for r := range inRouter {
		if !inSpec[r] {
			t.Errorf("route %s is served but not in openapi.yaml", r)
		}
	}
	for r := range inSpec {
		if !inRouter[r] {
			t.Errorf("openapi.yaml describes %s, which is not served", r)
		}
	}
	if len(inRouter) == 0 {
		t.Fatal("no routes found")
	}
}

// readSpec decodes the repository's openapi.yaml into spec.
func readSpec(t *testing.T, spec any) {
	t.Helper()
	data, err := os.ReadFile("../../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, spec); err != nil {
		t.Fatal(err)
	}
}
