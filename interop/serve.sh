#!/usr/bin/env bash
# Starts one of the interop suite's independent servers by hand, with the
# configuration the tests use (interop/conf/), in the foreground, on
# loopback only:
#
#   bash interop/serve.sh SERVER [PORT]
#
# SERVER is apache, haproxy, haproxy-no8441, nginx, h2o, caddy, node or
# ngtcp2; PORT (default 8443) is its TLS port on 127.0.0.1 (Caddy also
# serves PORT+1: h2 only, Alt-Svc naming h3 on PORT). Everything goes in a
# new temporary directory: a self-signed certificate for localhost and
# 127.0.0.1 (openssl), the rendered configuration, logs, and a document
# root. The WebSocket echo backend (go run ./interop/echo) runs on
# 127.0.0.1:BACKEND (default 8080) behind the proxies. Ctrl-C stops both.
#
# Then, for example:
#   go run ./cmd/eyeballs ws -trace -cacert DIR/cert.pem wss://localhost:8443/echo
#   curl --cacert DIR/cert.pem https://localhost:8443/index.html
set -euo pipefail
cd "$(dirname "$0")/.."

server=${1:?usage: serve.sh apache|haproxy|haproxy-no8441|nginx|h2o|caddy|node|ngtcp2 [PORT]}
port=${2:-8443}
backend=${BACKEND:-8080}
dir=$(mktemp -d /tmp/interop-"$server"-XXXXXX)
chmod 755 "$dir"
mkdir -p "$dir/htdocs" "$dir/tmp"
echo "served by an independent server" >"$dir/htdocs/index.html"
chmod -R a+rX "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
	-keyout "$dir/key.pem" -out "$dir/cert.pem" -subj /CN=localhost \
	-addext subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1 \
	-addext basicConstraints=critical,CA:FALSE 2>/dev/null
chmod 644 "$dir/key.pem"

global="" user=""
if [ "$server" = haproxy-no8441 ]; then global=h2-workaround-bogus-websocket-clients; fi
if [ "$(id -u)" = 0 ]; then user="user: nobody"; fi
render() { # conf/$1 → $2
	sed -e "s#@DIR@#$dir#g; s#@PORT@#$port#g; s#@PORT2@#$((port + 1))#g; s#@BACKEND@#$backend#g" \
		-e "s#@CERT@#$dir/cert.pem#g; s#@KEY@#$dir/key.pem#g; s#@NAME@#localhost#g; s#@DOCS@#$dir/htdocs#g" \
		-e "s#@GLOBAL@#$global#g; s#@USER@#$user#g; s#@EXTRA@##g" "interop/conf/$1" >"$2"
}

go run ./interop/echo -addr "127.0.0.1:$backend" &
echo_pid=$!
trap 'kill $echo_pid 2>/dev/null' EXIT

echo "serve.sh: $server on 127.0.0.1:$port, files in $dir"
case "$server" in
apache)
	render apache2.conf "$dir/httpd.conf"
	root=() && [ "$(id -u)" = 0 ] && root=(-DROOT)
	apache2 -f "$dir/httpd.conf" -d "$dir" -DFOREGROUND "${root[@]}"
	;;
haproxy | haproxy-no8441)
	render haproxy.cfg "$dir/haproxy.cfg"
	cat "$dir/cert.pem" "$dir/key.pem" >"$dir/haproxy.pem"
	haproxy -db -f "$dir/haproxy.cfg"
	;;
nginx)
	render nginx.conf "$dir/nginx.conf"
	nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
	;;
h2o)
	render h2o.conf "$dir/h2o.conf"
	h2o -c "$dir/h2o.conf"
	;;
caddy)
	render Caddyfile "$dir/Caddyfile"
	HOME=$dir XDG_CONFIG_HOME=$dir/config XDG_DATA_HOME=$dir/data caddy run --config "$dir/Caddyfile" --adapter caddyfile
	;;
node)
	PORT=$port CERT=$dir/cert.pem KEY=$dir/key.pem node interop/testdata/wsh2.mjs
	;;
ngtcp2)
	gtlsserver -q -d "$dir/htdocs" 127.0.0.1 "$port" "$dir/key.pem" "$dir/cert.pem"
	;;
*)
	echo "serve.sh: unknown server $server" >&2
	exit 2
	;;
esac
