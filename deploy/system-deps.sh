#!/usr/bin/env bash
# Installs the system packages a make target needs, or says which to install.
#
#   deploy/system-deps.sh demo    PostgreSQL's server binaries (unless DATABASE_URL is set)
#   deploy/system-deps.sh test    PostgreSQL, Redis, nginx and Chromium, for `make test`
#   deploy/system-deps.sh bench   what `make demo` needs, and wrk when it can be had
#
# As root on a system with apt-get the missing Debian packages are installed
# (one `apt-get update` first); as anyone else the script prints the one
# install line and exits 1. Nothing is downloaded but Debian packages.
set -euo pipefail

target=${1:-}
case "$target" in
demo | test | bench) ;;
*)
	echo "system-deps: unknown target \"$target\": use demo, test or bench" >&2
	exit 2
	;;
esac

have() { command -v "$1" >/dev/null 2>&1; }

# PostgreSQL's Debian package keeps initdb and pg_ctl off PATH.
have_postgres() {
	have initdb && return 0
	compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

missing=()
optional=()
if [ -n "${DATABASE_URL:-}" ] && [ "$target" != test ]; then
	echo "$target: DATABASE_URL is set; using that PostgreSQL" >&2
else
	have_postgres || missing+=(postgresql)
fi
if [ "$target" = test ]; then
	have redis-server || missing+=(redis-server)
	have nginx || missing+=(nginx)
	have chromium || have chromium-browser || missing+=(chromium)
	# The agent's open-file e2e test starts it under prlimit (util-linux).
	have prlimit || missing+=(util-linux)
fi
if [ "$target" = bench ]; then
	have wrk || optional+=(wrk)
fi

[ ${#missing[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! have apt-get; then
	if [ ${#missing[@]} -gt 0 ]; then
		echo "$target: missing system packages: ${missing[*]}" >&2
		echo "$target: install them, then run make $target again (Debian/Ubuntu):" >&2
		echo "sudo apt-get install -y ${missing[*]}" >&2
		[ "$target" = test ] || [ -n "${DATABASE_URL:-}" ] ||
			echo "$target: or set DATABASE_URL to an existing PostgreSQL server" >&2
		exit 1
	fi
	echo "$target: wrk not found; using the harness's own Go load generator (Debian: apt-get install -y wrk)" >&2
	exit 0
fi

install() {
	{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"; } >&2
}
if [ ${#missing[@]} -gt 0 ]; then
	echo "$target: installing ${missing[*]} with apt-get" >&2
	install "${missing[@]}"
fi
if [ ${#optional[@]} -gt 0 ]; then
	echo "$target: installing ${optional[*]} with apt-get" >&2
	install "${optional[@]}" ||
		echo "$target: wrk could not be installed; using the harness's own Go load generator" >&2
fi
