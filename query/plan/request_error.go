package plan

import (
	"fmt"
	"net/http"
	"regexp"
)

// Error is an error the client sees: an HTTP code, Google's canonical
// status name and a message. Anything else reaching the handler is an
// internal error whose text is logged, never sent. Both transports send it
// as a google.rpc.Status (see status and writeError).
type Error struct {
	Code    int
	Status  string
	Message string
	// Field is the request field the error is about ("" when none or
	// unknown); it becomes a google.rpc.BadRequest field violation.
	Field string
	// Reason is the ErrorInfo reason; "" gives none.
	Reason string
}

func (e *Error) Error() string { return e.Status + ": " + e.Message }

// fieldPrefix finds the request path an INVALID_ARGUMENT message starts
// with ("dimensionFilter.filter.stringFilter.value: …", "requests[2]: …").
var fieldPrefix = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9]*(\[\d+\])?(\.[a-zA-Z][a-zA-Z0-9]*(\[\d+\])?)*):`)

func NewError(code int, status, format string, args ...any) *Error {
	e := &Error{Code: code, Status: status, Message: fmt.Sprintf(format, args...)}
	if code == http.StatusBadRequest {
		if m := fieldPrefix.FindStringSubmatch(e.Message); m != nil {
			e.Field = m[1]
		}
	}
	return e
}

func InvalidArgument(format string, args ...any) *Error {
	return NewError(http.StatusBadRequest, "INVALID_ARGUMENT", format, args...)
}

// withField is e about the request field path.
func withField(e *Error, path string) *Error {
	e.Field = path
	return e
}
