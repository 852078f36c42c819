// Package web holds the dashboard: a few static files embedded in the
// aggregator binary and served at "/" next to the Data API.
//
// The dashboard is a client of the public API only. It reads reports with
// :batchRunReports and the live count with :runRealtimeReport, using an API
// key the viewer supplies (typed into its form, or passed once in the URL
// fragment "#property=ID&key=KEY", which browsers never send to a server; the
// page moves it into sessionStorage and removes it from the address bar). It
// needs no server-side session, cookie or template, so it can be served by
// any node of a cluster or from a static host.
package web
