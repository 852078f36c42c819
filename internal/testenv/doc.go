// Package testenv gives tests real PostgreSQL and Redis servers.
//
// With DATABASE_URL set, every PostgresURL call creates a fresh, randomly
// named database on that server and drops it when the test ends; without
// it, the first call starts a throwaway server from the system's initdb and
// pg_ctl (see internal/pgserver) that lives until the test binary's
// TestMain returns. REDIS_URL works the same way for Redis (tests share the
// server and keep their keys apart with Prefix), else a throwaway
// redis-server is started. OwnRedis starts a redis-server for one test
// alone, which the test may kill to see the system live without Redis. When neither the variable nor the binaries are
// there, the test fails with a message naming the package to install:
// tests never skip because a service is missing.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }
package testenv
