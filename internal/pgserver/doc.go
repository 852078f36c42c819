// Package pgserver runs a private PostgreSQL server from the system's own
// binaries (initdb, pg_ctl): the managed database of `avila demo` and the
// throwaway servers of tests. It never downloads anything; when the binaries
// are missing it says which package to install.
//
// PostgreSQL refuses to run as root, so when the caller is root the server
// runs as the unprivileged user "postgres" (or "nobody"), and its data
// directory is handed to that user.
package pgserver
