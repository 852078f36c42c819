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
//
// The new-users sketch (new_users) takes the same marker for the same
// reason: a cell where every active user is new (a long-tail page, a site
// whose visitors are mostly first-time, nearly every cell of the bench's
// generated sets) holds it equal to the active sketch byte for byte. The
// empty bytea in new_users stands for the active sketch of its own cell
// (never for the users column), so the two markers are independent;
// readers and writers handle a cell's three sketches together
// (ExpandSketches, compactSketches), and rows written before it, holding a
// full copy, stay valid.

// ExpandUsers is the serialized sketch stored as users (or new_users) in
// a rollup cell whose active-users sketch is active.
func ExpandUsers(users, active []byte) []byte {
	if users != nil && len(users) == 0 {
		return active
	}
	return users
}

// compactUsers is what a rollup cell stores for the users (or new users)
// sketch users beside the active-users sketch active: the marker when they
// are equal.
func compactUsers(users, active []byte) []byte {
	if len(users) > 0 && bytes.Equal(users, active) {
		return []byte{}
	}
	return users
}

// ExpandSketches turns a rollup cell's sketches as stored (users, active
// users, new users, in RollupSketchColumns' order) into whole sketches: the
// markers of users and new users replaced by the active sketch.
func ExpandSketches(sks *[3][]byte) {
	sks[0] = ExpandUsers(sks[0], sks[1])
	sks[2] = ExpandUsers(sks[2], sks[1])
}

// compactSketches is what a rollup cell stores for its whole sketches
// sks (users, active users, new users): the marker for each of users and
// new users equal to the active sketch.
func compactSketches(sks [3][]byte) [3][]byte {
	return [3][]byte{compactUsers(sks[0], sks[1]), sks[1], compactUsers(sks[2], sks[1])}
}

// markedSketches are the indexes (in RollupSketchColumns' order) of the
// sketches that may be stored as the marker for the active one.
var markedSketches = [2]int{0, 2}
