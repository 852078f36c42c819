package postgres

import "bytes"

// A rollup cell's active-users sketch (active_users of rollup_days, an
// element of rollup_packs' active_users array) that equals the cell's users
// sketch byte for byte is stored as an empty bytea instead of a copy: since
// activeUsers by event-scoped dimensions follows GA4's per-user-day rule,
// nearly every user of a cell is active in it. NULL stays an empty sketch
// (no active users); a serialized sketch is never empty (encodeSketch gives
// nil for an empty one), so the marker is unambiguous, and rows holding a
// full copy stay valid. Readers expand the marker (ExpandActive) where
// they read the column, writers store it (compactActive) where they write
// it; everything between sees whole sketches. session_rollups keep
// copies.

// ExpandActive is the serialized active-users sketch stored as active in
// a rollup cell whose users sketch is users.
func ExpandActive(users, active []byte) []byte {
	if active != nil && len(active) == 0 {
		return users
	}
	return active
}

// compactActive is what a rollup cell stores for the active-users sketch
// active beside the users sketch users: the marker when they are equal.
func compactActive(users, active []byte) []byte {
	if len(active) > 0 && bytes.Equal(users, active) {
		return []byte{}
	}
	return active
}
