// Package plan is the planning stage of the Data API (package query): the
// request and response model (GA4's Data API v1beta and v1alpha funnel
// shapes as Go structs, request.go, response.go, funnel_request.go), and
// validation that turns a request into a Plan or a FunnelPlan holding no
// request strings that reach SQL text:
//
//   - the allowlist (schema.go, dimensions.go, metrics.go, commerce.go):
//     every dimension and metric with its GA4 scope, type and the SQL
//     expression an engine writes for it; custom parameters by a checked
//     name;
//   - scopes (scope_rules.go): GA4's incompatible pairs, read by
//     validation and the compatibility check, and the shape they give a
//     report (event, session, event-session, item);
//   - dates (dates.go): ranges resolved in the site's time zone to
//     half-open [start, end+1 day) instants;
//   - filters (filter.go, filter_tree.go, filter_validate.go, regex.go):
//     trees of allowlisted fields, fixed operators and values; RE2
//     patterns translated to PostgreSQL regular expressions with the same
//     meaning, or refused;
//   - errors (request_error.go): what a client is told, naming the field.
//
// A Plan's Route says which engine may answer it; the engines (query/engine/...)
// read plans and never requests, and the edge (query) turns transports'
// messages into requests and engines' answers into messages. plan imports
// neither (internal/layers).
//
// The time/tzdata import makes date resolution independent of the host's
// zoneinfo files, so a site's days are the same on every node.
package plan

import _ "time/tzdata" // see package comment
