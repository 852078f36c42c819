package protocol

// Version is the wire version carried in every Batch and Config.
const Version = 1

// Event flags (Event.Flags bit set).
const (
	FlagSessionStart   uint8 = 1 << iota // GA4 _ss or first hit of a new session
	FlagFirstVisit                       // GA4 _fv: first visit of this client
	FlagEngaged                          // GA4 seg=1: the session is engaged
	FlagNonInteraction                   // GA4 ni (non_interaction): not a user interaction
	FlagKeyEvent                         // the event is a key event (conversion)
	// FlagPersistent: Visitor is a long-lived key (protocol/identity: the
	// keyed client id or user_id under the site's identity secret), the same
	// across addresses, days and transports. Without it Visitor is a daily
	// cookieless id (keyed with the site's salt of the event's UTC day).
	FlagPersistent
)

// Event is one analytics hit after the agent's privacy and enrichment steps.
// It carries no raw IP address or user agent: those never leave the agent.
// Short msgpack keys keep the wire small; empty fields are omitted.
type Event struct {
	Site       uint32 `msgpack:"s"`           // property id the measurement id belongs to
	TimeMicros int64  `msgpack:"t"`           // event time, Unix microseconds, UTC
	Name       string `msgpack:"n"`           // GA4 event name (page_view, click, …)
	Visitor    uint64 `msgpack:"v"`           // the user's key: see FlagPersistent; never reversible
	User       uint64 `msgpack:"u,omitempty"` // identity key of the user_id when sent and allowed (then Visitor is it too)
	// Client is the identity key of the client id when Visitor is the
	// user_id's key, so the aggregator finds the device's session across a
	// login; 0 otherwise.
	Client     uint64             `msgpack:"cl,omitempty"`
	SessionID  int64              `msgpack:"si,omitempty"` // GA4 sid (session start, Unix seconds) when sent
	SessionNum int32              `msgpack:"sc,omitempty"` // GA4 sct: session count of this client
	Flags      uint8              `msgpack:"f,omitempty"`  // Flag* bits
	EngageMs   int64              `msgpack:"e,omitempty"`  // GA4 _et: engagement time in milliseconds
	Host       string             `msgpack:"h,omitempty"`  // page host name
	Path       string             `msgpack:"p,omitempty"`  // page path with allowlisted query parameters
	Title      string             `msgpack:"tt,omitempty"` // page title
	Referrer   string             `msgpack:"r,omitempty"`  // referrer URL, scrubbed; empty for self-referrals
	Language   string             `msgpack:"l,omitempty"`  // ul, lower case (en-us)
	Screen     string             `msgpack:"sr,omitempty"` // sr, e.g. 1920x1080
	Country    string             `msgpack:"c,omitempty"`  // ISO 3166-1 alpha-2
	Region     string             `msgpack:"rg,omitempty"` // region name
	City       string             `msgpack:"ci,omitempty"` // city name
	Browser    string             `msgpack:"b,omitempty"`  // browser family
	BrowserVer string             `msgpack:"bv,omitempty"` // browser major version
	OS         string             `msgpack:"o,omitempty"`  // operating system family
	Device     string             `msgpack:"d,omitempty"`  // desktop, mobile, tablet
	Params     map[string]string  `msgpack:"ps,omitempty"` // ep.* string parameters
	NumParams  map[string]float64 `msgpack:"pn,omitempty"` // epn.* numeric parameters
	UserProps  map[string]string  `msgpack:"up,omitempty"` // up.* / upn.* user properties, as text
}

// Batch is one shipped queue segment. (AgentID, Seq) identifies it for ever:
// Seq increases by one per segment of an agent, and a resent segment carries
// exactly the same events.
type Batch struct {
	Version uint8   `msgpack:"ver"`
	AgentID string  `msgpack:"a"`
	Seq     uint64  `msgpack:"q"`
	Created int64   `msgpack:"c"` // when the agent sealed the segment, Unix microseconds
	Events  []Event `msgpack:"e"`
}
