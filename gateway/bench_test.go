package gateway

import (
	"encoding/json"
	"testing"
)

var benchParams = json.RawMessage(`{"user":"sally","email":"sally@example.com","plan":"pro","tags":["a","b"],"n":12}`)

func BenchmarkValidateParams(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if err := ValidateParams(benchParams); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateAPIName(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if err := ValidateAPIName("support.case"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewEvent(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewEvent("customers", "new_customer", benchParams); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckJSON is what the JSON bounds add to ValidateParams.
func BenchmarkCheckJSON(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckJSON("the body", benchParams); err != nil {
			b.Fatal(err)
		}
	}
}
