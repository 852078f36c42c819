// Package privacy is where personal data stops: it turns what a browser
// sends (IP address, user agent, client and user ids, page and referrer URLs)
// into the pseudonymous, scrubbed values an Event may carry.
//
// Guarantees:
//   - A hit that may use identifiers (analytics storage granted, or no
//     consent signal on a site whose identity policy is cookie) is
//     identified by the keyed hash of its user_id, else of its client id,
//     under the site's long-lived identity secret (protocol/identity): one
//     device or user is one visitor across addresses, days and transports,
//     and the raw ids never leave the agent.
//   - Every other hit gets a cookieless visitor id: a BLAKE3 keyed hash of
//     the anonymized address and user agent under the site's salt for the
//     event's UTC day. The aggregator creates salts and deletes them two
//     days after their day, so such an id can neither be reversed nor linked
//     to the same visitor on another day.
//   - No salt for today yet (NoSaltError: the aggregator makes salts a day
//     ahead, but an agent may start or a site be created before its config
//     arrives) does not refuse the hit, which senders such as gtag.js would
//     not resend, nor does it keep anything raw until a salt comes: the hit
//     is scrubbed as usual and its visitor id is keyed with ProcessKeys, a
//     random secret held only in this process's memory, and it is made
//     cookieless (no cid, no uid). Such ids count visitors within one run of
//     the agent and one day only, cannot be linked to the salted ids or
//     across a restart, and a salt is never invented or persisted. The
//     collector logs why (throttled) and counts these events under the
//     outcome no_salt.
//   - The IP address enters the hash only anonymized (IPv4 /24, IPv6 /48);
//     neither it nor the user agent is returned in any form.
//   - Page and referrer URLs lose their query parameters except an allowlist
//     (utm_*, gclid and the site's KeepParams), their fragment and any user
//     info; a referrer from the site itself is dropped. E-mail-like values
//     are masked (ScrubEmails) in what is kept, and callers mask them in
//     titles and parameters too.
package privacy
