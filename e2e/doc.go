// Package e2e holds end-to-end tests that build and start the real
// avila-agent and avila-aggregator binaries as subprocesses, drive them over
// HTTP and QUIC, kill them with SIGKILL, and count what PostgreSQL stored.
//
// Every scenario asserts the delivery contract exactly: each hit that got a
// 204 is stored once, nothing is stored twice, and only hits whose request
// failed may be missing.
package e2e
