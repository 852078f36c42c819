package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// ErrUnknownKey is the error a KeyLookup returns (or wraps) for an API key
// that does not exist or was revoked; the handler answers 401.
var ErrUnknownKey = errors.New("unknown api key")

// apiError is an error the client sees: an HTTP code, Google's canonical
// status name and a message. Anything else reaching the handler is an
// internal error whose text is logged, never sent.
type apiError struct {
	code    int
	status  string
	message string
}

func (e *apiError) Error() string { return e.status + ": " + e.message }

func newAPIError(code int, status, format string, args ...any) *apiError {
	return &apiError{code: code, status: status, message: fmt.Sprintf(format, args...)}
}

func invalidArgument(format string, args ...any) *apiError {
	return newAPIError(http.StatusBadRequest, "INVALID_ARGUMENT", format, args...)
}

// errorBody is Google's error JSON: {"error":{"code","message","status"}}.
type errorBody struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
	} `json:"error"`
}

// writeError sends e in Google's error shape.
func writeError(w http.ResponseWriter, e *apiError) {
	var body errorBody
	body.Error.Code, body.Error.Message, body.Error.Status = e.code, e.message, e.status
	writeJSON(w, e.code, body)
}

// writeJSON sends v as the response with the given status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only response structs of this package reach here; they always marshal.
		code, b = http.StatusInternalServerError, []byte(`{"error":{"code":500,"message":"Internal error encountered.","status":"INTERNAL"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
