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
//     end at midnight (as in GA4); a session of a daily cookieless id
//     continues past midnight only while its visitor id does (the daily
//     salt changes it), one of a persistent id (the keyed client id or
//     user_id) continues.
//
// A session belongs to a user and a device: the events of one device
// (Device: the client id's key, also when a user_id's key is the visitor)
// join its sessions, so a Measurement Protocol event with the browser's
// client_id and session_id joins the browser's session, and a login in the
// middle of a session keeps it.
//
// Assign is a pure function of the events and the sessions already
// committed for their visitors, so a derivation that did not commit gets
// the same ids when it runs again. What sessions are committed is
// PostgreSQL's truth; Memory only spares the database look-up.
package sessions
