package protocol

import (
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// AckStatus is the aggregator's verdict on one batch.
type AckStatus uint8

const (
	// AckOK: the batch is stored (now or before); the agent may delete it.
	AckOK AckStatus = 1
	// AckRetry: not stored because of a passing condition (database down,
	// node draining); send it again later, possibly to another node.
	AckRetry AckStatus = 2
	// AckReject: the batch can never be stored as sent (undecodable, wrong
	// version). The agent sets it aside instead of resending it for ever.
	AckReject AckStatus = 3
)

func (s AckStatus) String() string {
	switch s {
	case AckOK:
		return "ok"
	case AckRetry:
		return "retry"
	case AckReject:
		return "reject"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Ack answers one Batch.
type Ack struct {
	Status      AckStatus `msgpack:"s"`
	Reason      string    `msgpack:"r,omitempty"`   // why Retry or Reject, for logs
	Stored      int       `msgpack:"n,omitempty"`   // events committed
	DeadLetters int       `msgpack:"d,omitempty"`   // events set aside with a reason
	Duplicate   bool      `msgpack:"dup,omitempty"` // the batch key was already committed
	Members     []Member  `msgpack:"m,omitempty"`   // the cluster's members and their state, for failover
}

// Member states as the cluster sees them. An aggregator that predates
// states sends none, which means alive.
const (
	// MemberAlive: the node answers gossip; agents may ship to it.
	MemberAlive = "alive"
	// MemberSuspect: the node stopped answering the probes of the node that
	// sent the list; it is declared dead unless it answers again soon.
	// Agents use it only when no alive node is left.
	MemberSuspect = "suspect"
	// MemberDead: gossip declared the node dead; agents do not ship to it
	// until it is listed alive again. Listed for a while after its death,
	// so agents that still hold a connection to it hear of it.
	MemberDead = "dead"
)

// Member describes one aggregator node as the cluster sees it.
type Member struct {
	Name     string  `msgpack:"n"`
	QUICAddr string  `msgpack:"q"`
	APIAddr  string  `msgpack:"a,omitempty"`
	Load     float64 `msgpack:"l,omitempty"`
	Draining bool    `msgpack:"d,omitempty"` // stopping: takes no new batches (dead members carry it too, for older agents)
	Version  string  `msgpack:"v,omitempty"`
	State    string  `msgpack:"st,omitempty"` // MemberAlive, MemberSuspect or MemberDead; "" means alive
	// Incarnation is when the node's process started (Unix milliseconds):
	// a node that restarts is listed with a new one, so an agent that gave
	// up on the old process knows at once that this one is worth a try.
	Incarnation int64 `msgpack:"i,omitempty"`
}

// Usable reports whether agents may ship to m now: alive (or of an older
// aggregator that sends no state) and not draining.
func (m Member) Usable() bool {
	return (m.State == "" || m.State == MemberAlive) && !m.Draining
}

// ConfigRequest asks an aggregator for the sites and salts an agent needs.
type ConfigRequest struct {
	Version uint8  `msgpack:"ver"`
	AgentID string `msgpack:"a"`
}

// Config is what an agent needs to accept hits: the sites it may record for
// and their daily visitor-id salts.
type Config struct {
	Version   uint8    `msgpack:"ver"`
	Generated int64    `msgpack:"g"` // Unix microseconds
	Sites     []Site   `msgpack:"s"`
	Salts     []Salt   `msgpack:"k"`
	Members   []Member `msgpack:"m,omitempty"`
}

// Site is the agent's view of a property.
type Site struct {
	ID            uint32   `msgpack:"i"`
	MeasurementID string   `msgpack:"m"`           // G-XXXXXXX
	APISecret     string   `msgpack:"a,omitempty"` // Measurement Protocol secret
	TimeZone      string   `msgpack:"z,omitempty"` // IANA name
	Domains       []string `msgpack:"d,omitempty"` // own host names (self-referrals)
	// DNT is what a browser hit with DNT: 1 or Sec-GPC: 1 becomes on this
	// site: "drop", "cookieless" or "ignore"; "" means the agent's --dnt.
	DNT string `msgpack:"dnt,omitempty"`
	// KeepParams are page and referrer query parameters kept beyond utm_*
	// and gclid (lower-case names).
	KeepParams []string `msgpack:"kp,omitempty"`
	// Identity is the site's identity policy for hits that carry no
	// consent signal: IdentityCookie (the client id and user_id identify
	// the user) or IdentityCookieless (daily cookieless ids); "" means
	// IdentityCookie. A consent signal always decides where one is sent.
	Identity string `msgpack:"id,omitempty"`
	// IdentitySecret is the site's long-lived identity secret
	// (protocol/identity, 32 bytes) under which the agent keys client ids
	// and user_ids. Empty (an aggregator that predates it): every hit of the
	// site gets a daily cookieless id.
	IdentitySecret []byte `msgpack:"is,omitempty"`
}

// Identity policies (Site.Identity).
const (
	IdentityCookie     = "cookie"
	IdentityCookieless = "cookieless"
)

// Salt is a site's secret for one UTC day; visitor ids are keyed hashes with
// it, and it is deleted two days after its day so ids cannot be linked later.
type Salt struct {
	Site uint32 `msgpack:"s"`
	Day  string `msgpack:"d"` // YYYY-MM-DD, UTC
	Key  []byte `msgpack:"k"` // 32 bytes
}

// Marshal helpers for the small messages; they never fail for these types
// short of a bug, so errors carry the type name.

// EncodeMsg encodes a small protocol message (Ack, Config, ConfigRequest).
func EncodeMsg(v any) ([]byte, error) {
	b, err := msgpack.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("protocol: encode %T: %w", v, err)
	}
	return b, nil
}

// DecodeMsg decodes a small protocol message.
func DecodeMsg(b []byte, v any) error {
	if err := msgpack.Unmarshal(b, v); err != nil {
		return fmt.Errorf("protocol: decode %T: %w", v, err)
	}
	return nil
}
