// Package listen is the agent's TCP listener, beneath its HTTP server
// (fasthttp). It keeps the agent serving when clients open more connections
// than it can hold:
//
//   - Accept errors that pass (EMFILE, ENFILE: out of file descriptors;
//     ECONNABORTED, ENOBUFS, ENOMEM) are retried after a growing pause
//     (5 ms doubling to 1 s, as net/http does), never returned: fasthttp
//     treats any accept error as fatal and would stop the agent.
//   - Connections are capped in total and per client address (an IPv6
//     client by its /64); a connection past a cap is answered 503 with
//     Retry-After and closed. Peers exempted (the reverse proxies the agent
//     trusts) count only against the total.
//   - A connection closed after an error answer (a 413 sent before the body
//     was read) is closed lingering: the write side first, then what the
//     client still sends is read and discarded, up to a bound in bytes and
//     time, so the answer reaches the client instead of a reset.
//   - A request head with a bare LF line ending fails the read at once with
//     ErrBareLF, rather than leaving the server waiting for a CRLF CRLF that
//     never comes.
//
// RaiseFileLimit and DefaultCaps size the caps from the process's open-file
// limit.
package listen
