// Package apptest starts the project's built binaries as subprocesses and
// waits for them, for the end-to-end tests (e2e/) and the benchmark
// harness (bench/) alike: a Process runs one binary with its stderr in a
// log file, learns its addresses from the one JSON ready line it prints on
// stdout, and can be stopped (SIGTERM), killed (SIGKILL) and restarted
// with the same arguments; WaitReady polls a /readyz until it answers 200.
package apptest
