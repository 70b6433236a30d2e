// Package bodyread reads HTTP bodies whose length is announced into one
// buffer of that length.
package bodyread

import "io"

// ReadAll reads r until EOF, as io.ReadAll does. When length (a body's
// Content-Length) is known (0 or more) and below limit, the buffer is made
// of that size at once (plus one byte, to see EOF without growing), instead
// of growing from 512 bytes; a body longer than announced still reads
// whole. limit is only a hint here: bound r itself (io.LimitReader,
// http.MaxBytesReader).
func ReadAll(r io.Reader, length, limit int64) ([]byte, error) {
	if length < 0 || length >= limit {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, length+1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // more than announced: grow
		}
	}
}
