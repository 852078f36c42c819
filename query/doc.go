// Package query serves the GA4 Data API v1beta (runReport) over the events
// stored by storage/postgres, in Google's JSON shapes, so GA4 client
// libraries and dashboards read Avila like a GA4 property.
//
// A request flows through four stages, one file group each:
//
//   - request model (request.go): types mirroring RunReportRequest JSON;
//     decoding refuses unknown fields and trailing data.
//   - validation (validate.go, dates.go, schema.go): every dimension and
//     metric name must be in the allowlist of schema.go; dates resolve in the
//     site's time zone to half-open [start, end+1 day) instants. The result
//     is a plan that holds no request strings that reach SQL.
//   - SQL builder (sql_builder.go): SQL text is assembled only from the
//     allowlist's expressions and fixed keywords; every value (site, time
//     zone, range bounds, limit, offset) is a bound parameter, so the text
//     depends only on the shape of the request and pgx caches its plan.
//   - executor and handler (executor.go, response.go, handler.go): one
//     statement per report, run with a timeout, answered as RunReportResponse
//     with values as strings like GA4.
//
// Errors use Google's shape {"error":{"code","message","status"}}: 400
// INVALID_ARGUMENT for a bad request (naming the offending field or name),
// 401 UNAUTHENTICATED without a valid bearer key, 403 PERMISSION_DENIED when
// the key may not read the property, 404 NOT_FOUND for an unknown property.
//
// The time/tzdata import makes date resolution independent of the host's
// zoneinfo files, so a site's days are the same on every node.
package query

import _ "time/tzdata" // see package comment
