# Starts the real servers the tests need, on loopback, in a temporary
# directory, on ports chosen at run time. Source it; call start_servers; the
# EXIT trap stops everything.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for_port() { # port, name
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "error: $2 did not start on port $1" >&2
  return 1
}

start_nginx() {
  local dir="$SIDEWATCH_TEST_DIR/nginx" port
  port=$(free_port)
  mkdir -p "$dir/html" "$dir/tmp"
  head -c 2097152 /dev/zero > "$dir/html/big.bin"
  printf '{"status":"ok","items":[{"id":7,"name":"seven"}],"count":3}' > "$dir/html/data.json"
  cat > "$dir/nginx.conf" <<CONF
daemon off;
worker_processes 1;
user root root;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    root $dir/html;
    location = /health   { default_type text/plain; return 200 "ok\n"; }
    location = /redirect { return 302 /health; }
    location = /loop     { return 302 /loop; }
    location = /teapot   { return 418; }
    location = /data.json { default_type application/json; }
    location = /big.bin  { }
    # Any /api/ path and method answers 200: the example configs' endpoints.
    location /api/       { default_type application/json; return 200 '{"ok":true}'; }
  }
}
CONF
  nginx -p "$dir" -c "$dir/nginx.conf" &
  echo $! >> "$SIDEWATCH_TEST_DIR/pids"
  wait_for_port "$port" nginx
  export SIDEWATCH_TEST_NGINX="http://127.0.0.1:$port"
}

stop_servers() {
  if [ -f "$SIDEWATCH_TEST_DIR/pids" ]; then
    while read -r pid; do kill "$pid" 2>/dev/null || true; done < "$SIDEWATCH_TEST_DIR/pids"
  fi
  rm -rf "$SIDEWATCH_TEST_DIR"
}

start_servers() {
  SIDEWATCH_TEST_DIR=$(mktemp -d -t sidewatch-test.XXXXXX)
  export SIDEWATCH_TEST_DIR
  trap stop_servers EXIT
  start_nginx
}
