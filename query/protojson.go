package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/avila-analytics/avila/query/plan"
	datapb "google.golang.org/genproto/googleapis/analytics/data/v1beta"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"
)

// maxBodyBytes bounds a request body; GA4 requests are a few KiB.
const maxBodyBytes = 1 << 20

// decodeProto reads one request message from r with proto3's JSON mapping
// (protojson), as Google's REST endpoints do: field names in lowerCamelCase
// or as in the .proto file, enums by name or number (Google's clients send
// numbers with $alt=json;enum-encoding=int), 64-bit integers as strings or
// numbers. An empty body is an empty request. An unknown field is refused
// with Google's message, naming the field and where it is.
func decodeProto(r io.Reader, m proto.Message) error {
	body, err := io.ReadAll(io.LimitReader(r, maxBodyBytes+1))
	if err != nil {
		return fmt.Errorf("query: read request body: %w", err)
	}
	if len(body) > maxBodyBytes {
		return plan.InvalidArgument("Request body exceeds %d bytes.", maxBodyBytes)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	var tree any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if d.Decode(&tree) == nil {
		if _, err := d.Token(); err != io.EOF {
			return plan.InvalidArgument("Invalid JSON payload received. Unexpected data after the request object.")
		}
		if ae := walkUnknown(tree, m.ProtoReflect().Descriptor(), ""); ae != nil {
			return ae
		}
		// GA4's Filter.emptyFilter is not in genproto's v1beta Filter:
		// take it out of the JSON and put it back as the unknown field
		// the gRPC transport receives (see hasEmptyFilter).
		var empties [][]step
		takeEmptyFilters(tree, m.ProtoReflect().Descriptor(), nil, &empties)
		if len(empties) > 0 {
			if body, err = json.Marshal(tree); err != nil {
				return fmt.Errorf("query: re-encode request: %w", err)
			}
		}
		if err := protojson.Unmarshal(body, m); err != nil {
			return protojsonError(err)
		}
		for _, path := range empties {
			f := follow(m.ProtoReflect(), path)
			f.SetUnknown(append(f.GetUnknown(), protowire.AppendBytes(protowire.AppendTag(nil, emptyFilterField, protowire.BytesType), nil)...))
		}
		return nil
	}
	if err := protojson.Unmarshal(body, m); err != nil {
		return protojsonError(err)
	}
	return nil
}

// protojsonError is a protojson decoding error as Google words it.
func protojsonError(err error) *plan.Error {
	msg := err.Error()
	if i := strings.Index(msg, "): "); i >= 0 && strings.HasPrefix(msg, "proto:") {
		msg = msg[i+3:]
	}
	return plan.InvalidArgument("Invalid JSON payload received. %s.", strings.TrimSuffix(strings.ReplaceAll(msg, "\u00a0", " "), "."))
}

// step is one move from a message to a nested one: its field, and the
// index in it when the field is a list (-1 otherwise).
type step struct {
	field protoreflect.FieldDescriptor
	index int
}

var filterDescriptor = (&datapb.Filter{}).ProtoReflect().Descriptor()

// takeEmptyFilters removes the emptyFilter members of the Filter objects
// in v (a message of type md), appending the path of each such Filter.
func takeEmptyFilters(v any, md protoreflect.MessageDescriptor, path []step, out *[][]step) {
	obj, ok := v.(map[string]any)
	if !ok {
		return
	}
	if md.FullName() == filterDescriptor.FullName() {
		for _, name := range []string{"emptyFilter", "empty_filter"} {
			if _, ok := obj[name]; ok {
				delete(obj, name)
				*out = append(*out, slices.Clone(path))
			}
		}
	}
	fields := md.Fields()
	for name, val := range obj {
		fd := fields.ByJSONName(name)
		if fd == nil {
			fd = fields.ByTextName(name)
		}
		if fd == nil || fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			continue
		}
		if list, ok := val.([]any); ok && fd.IsList() {
			for i, item := range list {
				takeEmptyFilters(item, fd.Message(), append(slices.Clone(path), step{fd, i}), out)
			}
			continue
		}
		takeEmptyFilters(val, fd.Message(), append(slices.Clone(path), step{fd, -1}), out)
	}
}

// follow walks path from m, creating nothing: protojson made every
// message on it.
func follow(m protoreflect.Message, path []step) protoreflect.Message {
	for _, s := range path {
		if s.index >= 0 {
			m = m.Mutable(s.field).List().Get(s.index).Message()
			continue
		}
		m = m.Mutable(s.field).Message()
	}
	return m
}

// walkUnknown finds the first JSON member of v (a message of type md)
// that md has no field for, walking nested messages and lists, and says so
// as Google does: `Invalid JSON payload received. Unknown name "x" at
// 'a.b': Cannot find field.`, with the path as the violation's field. nil
// when there is none.
func walkUnknown(v any, md protoreflect.MessageDescriptor, path string) *plan.Error {
	obj, ok := v.(map[string]any)
	if !ok || md.FullName().Parent() == "google.protobuf" {
		return nil // not an object, or a well-known type with its own JSON form
	}
	fields := md.Fields()
	oneofs := map[protoreflect.OneofDescriptor]int{}
	for name := range obj {
		fd := fields.ByJSONName(name)
		if fd == nil {
			fd = fields.ByTextName(name)
		}
		if md.FullName() == filterDescriptor.FullName() && (name == "emptyFilter" || name == "empty_filter") {
			fd = fields.ByName("string_filter") // counts in the one_filter oneof
		}
		if fd != nil && fd.ContainingOneof() != nil && !fd.ContainingOneof().IsSynthetic() {
			if oneofs[fd.ContainingOneof()]++; oneofs[fd.ContainingOneof()] > 1 {
				return plan.InvalidArgument("%s: set exactly one of %s.", cmpOr(path, "request"), oneofNames(fd.ContainingOneof(), md))
			}
		}
	}
	for name, val := range obj {
		fd := fields.ByJSONName(name)
		if fd == nil {
			fd = fields.ByTextName(name)
		}
		if fd == nil && md.FullName() == filterDescriptor.FullName() && (name == "emptyFilter" || name == "empty_filter") {
			continue
		}
		if fd == nil {
			e := plan.InvalidArgument("Invalid JSON payload received. Unknown name %q", name)
			if path != "" {
				e.Message += " at '" + path + "'"
			}
			e.Message += ": Cannot find field."
			e.Field = path
			return e
		}
		sub := fd.JSONName()
		if path != "" {
			sub = path + "." + sub
		}
		if fd.Kind() == protoreflect.EnumKind && !fd.IsMap() {
			if e := checkEnum(fd.Enum(), val, sub); e != nil {
				return e
			}
			continue
		}
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind || fd.IsMap() {
			continue
		}
		if fd.Message().FullName() == "google.protobuf.Duration" {
			if b, err := json.Marshal(val); err == nil && protojson.Unmarshal(b, &durationpb.Duration{}) != nil {
				return plan.InvalidArgument("%s: invalid duration %s; write seconds with an s suffix, like \"300s\" or \"1.5s\".", sub, b)
			}
			continue
		}
		if list, ok := val.([]any); ok && fd.IsList() {
			for i, item := range list {
				if e := walkUnknown(item, fd.Message(), sub+"["+strconv.Itoa(i)+"]"); e != nil {
					return e
				}
			}
			continue
		}
		if e := walkUnknown(val, fd.Message(), sub); e != nil {
			return e
		}
	}
	return nil
}

// responseJSON says how a REST response is encoded: enums as numbers when
// the client asked with $alt=json;enum-encoding=int (Google's clients in
// REST mode do).
func responseJSON(r *http.Request) protojson.MarshalOptions {
	return protojson.MarshalOptions{UseEnumNumbers: enumsAsInts(r.URL.RawQuery)}
}

// enumsAsInts reads $alt from a raw query string. Its value holds a ';',
// which net/url's query parsing refuses, so the pairs are split here.
func enumsAsInts(rawQuery string) bool {
	for _, pair := range strings.Split(rawQuery, "&") {
		pair, err := url.QueryUnescape(pair)
		if err != nil {
			continue
		}
		alt, ok := strings.CutPrefix(pair, "$alt=")
		if !ok {
			continue
		}
		for _, part := range strings.Split(alt, ";") {
			if strings.TrimSpace(part) == "enum-encoding=int" {
				return true
			}
		}
	}
	return false
}

// writeProto sends m as the response, in proto3 JSON.
func writeProto(w http.ResponseWriter, r *http.Request, m proto.Message) {
	b, err := responseJSON(r).Marshal(m)
	var out bytes.Buffer
	if err == nil {
		// protojson varies its spacing on purpose; compact it so the
		// bytes of an answer are stable.
		err = json.Compact(&out, b)
	}
	if err != nil {
		writeError(w, plan.NewError(http.StatusInternalServerError, "INTERNAL", "Internal error encountered."))
		return
	}
	writeBody(w, http.StatusOK, out.Bytes())
}

// oneofNames lists the JSON names of o's fields ("a, b or c"), GA4's
// emptyFilter among Filter's.
func oneofNames(o protoreflect.OneofDescriptor, md protoreflect.MessageDescriptor) string {
	var names []string
	for i := range o.Fields().Len() {
		names = append(names, o.Fields().Get(i).JSONName())
	}
	if md.FullName() == filterDescriptor.FullName() {
		names = append(names, "emptyFilter")
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkEnum refuses an enum value given by a name the enum lacks (v, or
// each of v when a list), naming the field and the names it takes.
// Numbers pass: proto3 enums are open, and validation names a number it
// does not evaluate.
func checkEnum(ed protoreflect.EnumDescriptor, v any, path string) *plan.Error {
	if list, ok := v.([]any); ok {
		for i, item := range list {
			if e := checkEnum(ed, item, path+"["+strconv.Itoa(i)+"]"); e != nil {
				return e
			}
		}
		return nil
	}
	name, ok := v.(string)
	if !ok || ed.Values().ByName(protoreflect.Name(name)) != nil {
		return nil
	}
	var names []string
	for i := range ed.Values().Len() {
		if n := string(ed.Values().Get(i).Name()); !strings.HasSuffix(n, "_UNSPECIFIED") {
			names = append(names, n)
		}
	}
	return plan.InvalidArgument("%s: %s is not supported; use %s.", path, plan.QuoteName(name), strings.Join(names, ", "))
}
