#!/usr/bin/env bash
# Installs the independent servers of the interop suite (interop/*_test.go)
# from Debian's packages: Apache httpd (mod_http2, mod_proxy_wstunnel),
# HAProxy, nginx, h2o, Caddy, the ngtcp2 example server, and curl as the
# reference client; Knot (with kdig) and unbound for DNS, Squid and Dante
# as HTTP CONNECT and SOCKS5 proxies. node comes with the machine.
#
# Run as root on Debian (.ci/run does). It never starts a service: where
# no /usr/sbin/policy-rc.d forbids it already, one that does is put in
# place for the install and removed afterwards, and a daemon that a
# package started anyway is stopped by the pid in its pid file. It is
# bounded in time and never fails its caller: on any problem it says so,
# and the interop tests whose server is missing skip.
set -u

packages=(apache2 haproxy nginx h2o caddy ngtcp2-server curl knot knot-dnsutils unbound squid dante-server)
# The program each package brings, as the tests look for it.
programs=(apache2 haproxy nginx h2o caddy gtlsserver curl knotd kdig unbound squid danted)

missing=()
for i in "${!packages[@]}"; do
	if ! command -v "${programs[$i]}" >/dev/null && [ ! -x "/usr/sbin/${programs[$i]}" ]; then
		missing+=("${packages[$i]}")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "interop: all servers installed"
	exit 0
fi
if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
	echo "interop: cannot install ${missing[*]} (needs apt-get and root): their tests will skip"
	exit 0
fi

policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\n# interop/install.sh: no service starts while it installs.\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	ours=1
fi

start=$(date +%s)
echo "interop: installing ${missing[*]}"
if timeout 300 apt-get update -qq &&
	timeout 600 env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/tmp/interop-apt.log 2>&1; then
	echo "interop: installed in $(($(date +%s) - start)) s"
else
	echo "interop: installing ${missing[*]} failed after $(($(date +%s) - start)) s (log: /tmp/interop-apt.log): their tests will skip"
	tail -5 /tmp/interop-apt.log 2>/dev/null
fi

if [ -n "$ours" ]; then
	rm -f "$policy"
fi

# A daemon that a package's postinst started despite the policy: stopped by
# the pid its own pid file records, only for packages installed just now.
for pkg in "${missing[@]}"; do
	case "$pkg" in
	apache2) files=(/run/apache2/apache2.pid /var/run/apache2/apache2.pid) ;;
	haproxy) files=(/run/haproxy.pid) ;;
	nginx) files=(/run/nginx.pid) ;;
	h2o) files=(/run/h2o.pid) ;;
	knot) files=(/run/knot/knot.pid) ;;
	unbound) files=(/run/unbound.pid) ;;
	squid) files=(/run/squid.pid) ;;
	dante-server) files=(/run/danted.pid) ;;
	*) files=() ;;
	esac
	for f in "${files[@]}"; do
		if [ -s "$f" ] && pid=$(cat "$f") && kill -0 "$pid" 2>/dev/null; then
			echo "interop: stopping the $pkg daemon its package started (pid $pid)"
			kill "$pid" 2>/dev/null || true
		fi
	done
done
exit 0
