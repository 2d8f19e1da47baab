#!/usr/bin/env bash
# Overload shedding: how many 429s per second the gateway answers once the quota is exhausted,
# next to nginx answering a fixed 429 on the same machine, in the same run, alternating rounds.
# Both log every request to a file (the gateway's default JSON line at info; nginx's access log).
# Usage: bash bench/shedding.sh   (ROUNDS=3 SECS=10 CONNS=64)
source "$(dirname "$0")/lib.sh"
ROUNDS=${ROUNDS:-3}; SECS=${SECS:-10}; CONNS=${CONNS:-64}
build; need wrk nginx
SIM=$(free_port); GW=$(free_port); NG=$(free_port)
sandbox "$SIM" 0 false
gateway gw "$GW" "$SIM" "" info
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx.conf" <<NGINX
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log $WORK/nginx/access.log;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  server {
    listen 127.0.0.1:$NG;
    location / {
      default_type application/problem+json;
      return 429 '{"type":"/problems/quota-exceeded","title":"Quota exceeded","status":429}';
    }
  }
}
NGINX
nginx -c "$WORK/nginx.conf" >/dev/null 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$NG/" && break; sleep 0.05; done
gwload() { load "http://127.0.0.1:$GW/customers/800000232018/credit" "$1" "$CONNS"; }
ngload() { load "http://127.0.0.1:$NG/customers/800000232018/credit" "$1" "$CONNS"; }
gwload 3 >/dev/null; ngload 2 >/dev/null   # warm-up; exhausts the quota's 2 s of slots
for r in $(seq "$ROUNDS"); do
  ngload "$SECS" >>"$WORK/nginx.txt"
  gwload "$SECS" >>"$WORK/gateway.txt"
done
header "Overload shedding (bash bench/shedding.sh)"
echo "load: wrk -t1 -c$CONNS, $SECS s x $ROUNDS alternating rounds each, POST /customers/{uin}/credit with the credit quota (5/s) exhausted; medians"
printf '%-28s %10s %10s %10s %12s\n' server 'answers/s' '429 share' 'p50 ms' 'p99 ms'
for b in nginx gateway; do
  f="$WORK/$b.txt"
  rps=$(awk '{print $1/($4/1e6)}' "$f" | median)
  share=$(awk '{print $2/$1*100}' "$f" | median)
  p50=$(col "$f" 5); p99=$(col "$f" 6)
  printf '%-28s %10.0f %9.1f%% %10.3f %12.3f\n' "$b" "$rps" "$share" "$(echo "$p50/1000" | bc -l)" "$(echo "$p99/1000" | bc -l)"
  eval "${b}_rps=$rps"
done
printf 'gateway / nginx: %.0f%%\n' "$(echo "$gateway_rps*100/$nginx_rps" | bc -l)"
