// Package sessions groups a visitor's events into GA4 sessions, for the
// aggregator's write stage (aggregator/write assigns them when it derives a
// site's staged events, and stores them in the same transaction).
//
// A session is identified per site and visitor by an id:
//   - when the sender gives GA4's sid (gtag.js sid, Measurement Protocol
//     session_id), the id is that value, and every event carrying it belongs
//     to that session whatever the gaps between them;
//   - otherwise the session is derived by inactivity: an event more than
//     Timeout after the latest event of the visitor's sessions starts a new
//     one, whose id is the Unix second of its first event. Sessions do not
//     end at midnight (as in GA4), though visitor ids change with the daily
//     salt, so a session across midnight continues only while its visitor
//     id does.
//
// Assign is a pure function of the events and the sessions already
// committed for their visitors, so a derivation that did not commit gets
// the same ids when it runs again. What sessions are committed is
// PostgreSQL's truth; Memory only spares the database look-up.
package sessions
