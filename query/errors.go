package query

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/avila-analytics/avila/query/plan"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/anypb"
)

// ErrUnknownKey is the error a KeyLookup returns (or wraps) for an API key
// that does not exist or was revoked; the handler answers 401.
var ErrUnknownKey = errors.New("unknown api key")

// errorDomain is the ErrorInfo domain of this API's errors, Google's for
// the Data API.
const errorDomain = "analyticsdata.googleapis.com"

// errorDetails are the google.rpc error details Google sends with e: a
// BadRequest naming the field of an invalid argument, an ErrorInfo with
// the reason of a refused key or a spent quota.
func errorDetails(e *plan.Error) []protoadapt.MessageV1 {
	var out []protoadapt.MessageV1
	if e.Status == "INVALID_ARGUMENT" {
		out = append(out, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: e.Field, Description: e.Message}}})
	}
	if e.Reason != "" {
		out = append(out, &errdetails.ErrorInfo{Reason: e.Reason, Domain: errorDomain})
	}
	return out
}

// grpcStatus is e as a gRPC status with its details.
func grpcStatus(e *plan.Error) *status.Status {
	c, ok := code.Code_value[e.Status]
	if !ok {
		c = int32(codes.Unknown)
	}
	st := status.New(codes.Code(c), e.Message)
	if d := errorDetails(e); len(d) > 0 {
		if withDetails, err := st.WithDetails(d...); err == nil {
			st = withDetails
		}
	}
	return st
}

// errorBody is Google's REST error JSON:
// {"error":{"code","message","status","details":[{"@type":…}]}}.
type errorBody struct {
	Error struct {
		Code    int               `json:"code"`
		Message string            `json:"message"`
		Status  string            `json:"status"`
		Details []json.RawMessage `json:"details,omitempty"`
	} `json:"error"`
}

// writeError sends e in Google's error shape.
func writeError(w http.ResponseWriter, e *plan.Error) {
	var body errorBody
	body.Error.Code, body.Error.Message, body.Error.Status = e.Code, e.Message, e.Status
	for _, d := range errorDetails(e) {
		a, err := anypb.New(protoadapt.MessageV2Of(d))
		if err != nil {
			continue
		}
		if b, err := protojson.Marshal(a); err == nil {
			body.Error.Details = append(body.Error.Details, b)
		}
	}
	writeJSON(w, e.Code, body)
}

// writeJSON sends v as the response with the given status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only response structs of this package reach here; they always marshal.
		code, b = http.StatusInternalServerError, []byte(`{"error":{"code":500,"message":"Internal error encountered.","status":"INTERNAL"}}`)
	}
	writeBody(w, code, b)
}

// writeBody sends b, a JSON document, with the given status code.
func writeBody(w http.ResponseWriter, code int, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
