package query

import (
	"fmt"
	"net/http"
	"regexp"
)

// apiError is an error the client sees: an HTTP code, Google's canonical
// status name and a message. Anything else reaching the handler is an
// internal error whose text is logged, never sent. Both transports send it
// as a google.rpc.Status (see status and writeError).
type apiError struct {
	code    int
	status  string
	message string
	// field is the request field the error is about ("" when none or
	// unknown); it becomes a google.rpc.BadRequest field violation.
	field string
	// reason is the ErrorInfo reason; "" gives none.
	reason string
}

func (e *apiError) Error() string { return e.status + ": " + e.message }

// fieldPrefix finds the request path an INVALID_ARGUMENT message starts
// with ("dimensionFilter.filter.stringFilter.value: …", "requests[2]: …").
var fieldPrefix = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9]*(\[\d+\])?(\.[a-zA-Z][a-zA-Z0-9]*(\[\d+\])?)*):`)

func newAPIError(code int, status, format string, args ...any) *apiError {
	e := &apiError{code: code, status: status, message: fmt.Sprintf(format, args...)}
	if code == http.StatusBadRequest {
		if m := fieldPrefix.FindStringSubmatch(e.message); m != nil {
			e.field = m[1]
		}
	}
	return e
}

func invalidArgument(format string, args ...any) *apiError {
	return newAPIError(http.StatusBadRequest, "INVALID_ARGUMENT", format, args...)
}

// withField is e about the request field path.
func withField(e *apiError, path string) *apiError {
	e.field = path
	return e
}

