package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/bodyread"
)

// readBody reads a request body of at most limit bytes; what names it in
// errors ("the body", "the batch").
func readBody(w http.ResponseWriter, r *http.Request, limit int64, what string) ([]byte, error) {
	body, err := bodyread.ReadAll(http.MaxBytesReader(w, r.Body, limit), r.ContentLength, limit+1)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, gateway.Errorf(gateway.ETooLarge, "%s is larger than %d bytes", what, limit)
		}
		return nil, gateway.Errorf(gateway.EInvalid, "could not read the body")
	}
	return body, nil
}

// decoding says how decodeJSON reads one kind of body.
type decoding struct {
	// what names the body in errors ("the registration").
	what string
	// want says what the body must be ("a JSON object").
	want string
	// limit bounds the body's size; 0 is the gateway's MaxBodyBytes.
	limit int64
	// lenient accepts members the Go type does not declare; otherwise
	// they are an error.
	lenient bool
	// optional lets an empty body stand for the zero value.
	optional bool
}

// decodeJSON reads r's body as d says and decodes it into dst. Every
// failure is an EInvalid (or ETooLarge) error in one vocabulary: "<what>
// is larger than N bytes", "<what> must be <want>", "<what> is not valid
// JSON: <reason>", or one of gateway.CheckJSON's ("<what> nests deeper
// than N levels"...). Nothing may follow the JSON value but white space,
// and the body must keep the bounds of gateway.CheckJSON.
func (h *Handler) decodeJSON(w http.ResponseWriter, r *http.Request, d decoding, dst any) error {
	limit := d.limit
	if limit <= 0 {
		limit = h.cfg.MaxBodyBytes
	}
	body, err := readBody(w, r, limit, d.what)
	if err != nil {
		return err
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		if d.optional {
			return nil
		}
		return gateway.Errorf(gateway.EInvalid, "%s is empty: want %s", d.what, d.want)
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	if !d.lenient {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(dst); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field == "" {
			return gateway.Errorf(gateway.EInvalid, "%s must be %s", d.what, d.want)
		}
		return gateway.Errorf(gateway.EInvalid, "%s is not valid JSON: %s", d.what, strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return gateway.Errorf(gateway.EInvalid, "%s is not valid JSON: data after the JSON value", d.what)
	}
	return gateway.CheckJSON(d.what, trimmed)
}
