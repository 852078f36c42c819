package postgres

import "bytes"

// A rollup cell's users sketch (users of rollup_days and session_rollups,
// an element of rollup_packs' users array) that equals the cell's active-users sketch
// byte for byte is stored as an empty bytea instead of a copy: since
// activeUsers by event-scoped dimensions follows GA4's per-user-day rule,
// nearly every user of a cell is active in it. The active sketch is the
// one kept whole because reports ask for activeUsers (GA4's "Users", the
// dashboard's tiles and tops) far more often than for totalUsers: those
// read the active column alone, a totalUsers report reads both. NULL
// stays an empty sketch; a serialized sketch is never empty (encodeSketch
// gives nil for an empty one), so the marker is unambiguous, and rows
// holding a full copy stay valid. Readers expand the marker (ExpandUsers)
// where they read the column, writers store it (compactUsers) where they
// write it; everything between sees whole sketches. session_rollups cells
// take the same form (their rows written before it hold copies, which stay
// valid). Migration 027 turned the earlier form, the active sketch stored
// as the marker, into this one.

// ExpandUsers is the serialized users sketch stored as users in a rollup
// cell whose active-users sketch is active.
func ExpandUsers(users, active []byte) []byte {
	if users != nil && len(users) == 0 {
		return active
	}
	return users
}

// compactUsers is what a rollup cell stores for the users sketch users
// beside the active-users sketch active: the marker when they are equal.
func compactUsers(users, active []byte) []byte {
	if len(users) > 0 && bytes.Equal(users, active) {
		return []byte{}
	}
	return users
}
