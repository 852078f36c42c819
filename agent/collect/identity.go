package collect

import (
	"net/netip"
	"strings"

	"github.com/avila-analytics/avila/agent/privacy"
	"github.com/avila-analytics/avila/protocol"
	"github.com/avila-analytics/avila/protocol/identity"
)

// consent is a hit's analytics-storage consent as its sender signalled it.
type consent int

const (
	consentUnset   consent = iota // no signal: the site's identity policy decides
	consentGranted                // analytics storage granted
	consentDenied                 // analytics storage denied (or DNT/GPC under a cookieless policy)
)

// analyticsConsent reads the hit's consent: Cookieless (MP consent denied,
// a DNT/GPC policy, t.js without a client id) denies; gcs (G1<ad><analytics>)
// is the current state and wins over gcd; gcd's analytics_storage letter
// (position 4) is the state after defaults and updates: granted for t
// (granted by default), r (denied, then granted), n (granted by update),
// v (granted by default and update); denied for p, q, m, u; unset for l.
// Granted is MP consent.analytics_storage GRANTED.
func (h *Hit) analyticsConsent() consent {
	switch {
	case h.Cookieless:
		return consentDenied
	case h.Consent != "":
		if len(h.Consent) == 4 && strings.HasPrefix(h.Consent, "G1") {
			switch h.Consent[3] {
			case '1':
				return consentGranted
			case '0':
				return consentDenied
			}
		}
		return consentUnset
	case len(h.ConsentDetail) > 4:
		switch {
		case strings.IndexByte("trnv", h.ConsentDetail[4]) >= 0:
			return consentGranted
		case strings.IndexByte("pqmu", h.ConsentDetail[4]) >= 0:
			return consentDenied
		}
	case h.Granted:
		return consentGranted
	}
	return consentUnset
}

// IdentifiersAllowed reports whether the hit may be identified by its
// client id and user_id on a site whose policy (protocol.Site.Identity) is
// policy: analytics storage granted, or no consent signal and a cookie
// policy ("" is the default, cookie).
func (h *Hit) IdentifiersAllowed(policy string) bool {
	switch h.analyticsConsent() {
	case consentGranted:
		return true
	case consentDenied:
		return false
	}
	return policy != protocol.IdentityCookieless
}

// ids are the identity fields of an event.
type ids struct {
	visitor, user, client uint64
	persistent            bool
}

// identify chooses the event's identity (see identityMemo.ids) and sets
// Visitor, User, Client and FlagPersistent.
func identify(e *protocol.Event, got ids) {
	e.Visitor, e.User, e.Client = got.visitor, got.user, got.client
	if got.persistent {
		e.Flags |= protocol.FlagPersistent
	}
}

// identityMemo computes a hit's identity, remembering the last one: the
// events of a request share the client address and user agent, and mostly
// the key, client id and user id, so a 20-event POST hashes once, not 20
// times. A nil memo computes every identity.
type identityMemo struct {
	key      *privacy.Key
	hasher   *identity.Hasher
	cid, uid string
	got      ids
}

// ids is the identity of a hit whose allowed identifiers are cid and uid
// (both empty when the hit may not use identifiers):
//   - uid (with a hasher: the site has an identity secret): Visitor and
//     User are the user_id's key, Client the client id's (the device, so
//     the aggregator joins its session across a login); persistent;
//   - else cid: Visitor is the client id's key; persistent;
//   - else the daily cookieless id of (anonymized address, user agent)
//     under key, the site's salt of the day.
func (m *identityMemo) ids(key *privacy.Key, h *identity.Hasher, ip netip.Addr, ua, cid, uid string) ids {
	if m != nil && m.key == key && m.hasher == h && m.cid == cid && m.uid == uid && (m.got != ids{}) {
		return m.got
	}
	var got ids
	switch {
	case h != nil && uid != "":
		got = ids{visitor: h.User(uid), user: h.User(uid), client: h.Client(cid), persistent: true}
	case h != nil && cid != "":
		got = ids{visitor: h.Client(cid), persistent: true}
	default:
		got = ids{visitor: key.Visitor(ip, ua, "")}
	}
	if m != nil {
		m.key, m.hasher, m.cid, m.uid, m.got = key, h, cid, uid, got
	}
	return got
}
