// Package queue is the agent's durable buffer between accepting a hit and
// shipping it to an aggregator.
//
// Events are appended to a write-ahead log beside the bbolt file (wal.go)
// and Append returns only after the write holding them was fdatasynced, so a
// 2xx answered after Append is a promise the event survives a crash or power
// loss. Concurrent Appends share one write and sync (group commit): while a
// commit is in flight new arrivals wait, and the next commit takes all of
// them at once, without any artificial delay. Seal moves logged events into
// segments in bbolt, taking those this process logged from a bounded copy
// of their plaintext in memory (wal_plain.go) rather than reading and
// decrypting the log again; the pending bucket holds what the log had to
// give up when it was full. At Open, logged events bbolt does not hold yet are
// moved into the pending bucket: each is in exactly one place, once.
//
// Pending events are sealed, oldest first, into numbered segments. A segment
// is stored in its final wire form (protocol.AppendBatchHead and the events,
// compressed by protocol.CompressSealedBatch: no zstd checksum, as AES-GCM
// here and TLS on the way guard the bytes) under its seq,
// which starts at 1 and grows by one per segment for the life of the file, so
// (AgentID, Seq) names the same bytes for ever: a resend after a crash carries
// exactly the events of the first send. A segment is deleted only by Ack, or
// set aside by Reject for an operator to inspect.
//
// Every stored value (pending and logged events, the wire part of segments,
// meta values) is sealed with AES-256-GCM under a key kept in a separate file
// (Options.KeyFile, created 0600 on first open), with a fresh nonce per
// value. A sealed check value in the meta bucket tells at Open whether the
// key file is the queue's: a wrong or missing key is ErrWrongKey or a clear
// error, and the file is left as it was. A file written before encryption
// is sealed in place at its first Open.
//
// Durability is tested beyond what a SIGKILL shows (crash_test.go): the log
// reaches its file through walFile, and powerloss_test.go stops the queue at
// each failpoint (before and after the log's fdatasync, inside and after
// the seal, after a drain, inside the ack) on a simulated disk that keeps
// only what was synced. Every acknowledged event survives, once; a log
// without the fdatasync fails that test. In production the file is an
// *os.File and the failpoint hook is nil.
//
// Disk use is bounded by Options.MaxBytes (pending, sealed and rejected
// bytes) plus the log's fixed size; beyond it Append fails with ErrFull and
// the agent answers 503.
package queue
