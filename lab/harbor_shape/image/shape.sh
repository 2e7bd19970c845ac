#!/bin/sh
# Harbor-shaped stand-in: this one busybox script plays every Harbor v2 service.
#   shape.sh run SERVICE     the service's main process (writes a marker into its data mount)
#   shape.sh health SERVICE  the service's Docker healthcheck (what Harbor's image checks)
#   shape.sh route           one connection through the proxy (run by socat per connection)
# Each service answers HTTP on its port while it runs (busybox httpd), on the harbor bridge
# network under its service name, as Harbor's (HTTP services 8080, registry 5000, postgresql
# 5432, redis 6379: the shape's httpd plays them too); the paths Harbor's checks use exist. core serves /api/v2.0/ping and /api/v2.0/health like Harbor's core:
# every component but core is a periodic checker (first check when core starts, then every
# HEALTH_CHECK_PERIOD s, 10 as in Harbor), reading "unknown status" until its first check ends.
# The proxy is a real TLS front (socat) that sends /api/ and /service/ to core, /v2/ to the
# registry, the rest to the portal, and answers 502 while the upstream does not accept.
# Unhealthy switch: a file /control/unhealthy-SERVICE fails SERVICE's Docker healthcheck and its
# component's next periodic check (core's component at once: core is not a periodic checker).
CONTROL=/control
cmd=$1
svc=$2

port() {  # the port a service answers HTTP on while it runs ("" = none), Harbor's
    case "$1" in
        core | portal | jobservice | registryctl | trivy-adapter | proxy) echo 8080 ;;
        postgresql) echo 5432 ;; redis) echo 6379 ;; registry) echo 5000 ;; *) echo "" ;;
    esac
}

addr() {  # a service's fixed address on the harbor network (docker-compose.yml.tmpl); the
    # shape does not rely on Docker's DNS: a stopped service's name then goes unresolved to
    # Docker's upstream resolvers (none reachable from a lab netns) and a lookup stalls
    case "$1" in
        log) echo 172.30.250.10 ;; registry) echo 172.30.250.11 ;;
        registryctl) echo 172.30.250.12 ;; postgresql) echo 172.30.250.13 ;;
        core) echo 172.30.250.14 ;; portal) echo 172.30.250.15 ;;
        jobservice) echo 172.30.250.16 ;; redis) echo 172.30.250.17 ;;
        proxy) echo 172.30.250.18 ;; trivy-adapter) echo 172.30.250.19 ;;
    esac
}

check_path() {  # the path Harbor's checks GET (core's checker and the image's healthcheck)
    case "$1" in
        core) echo /api/v2.0/ping ;; jobservice) echo /api/v1/stats ;;
        registryctl) echo /api/health ;; trivy-adapter) echo /probe/healthy ;; *) echo / ;;
    esac
}

service_of() {  # Harbor health component -> compose service
    case "$1" in
        database) echo postgresql ;; trivy) echo trivy-adapter ;; *) echo "$1" ;;
    esac
}

http_get() {  # exit 0 when GET http://HOST:PORT/PATH answers 200 (busybox wget: no -T)
    timeout 5 wget -q -O /dev/null "http://$1:$2$3" 2>/dev/null
}

PERIODIC="database jobservice portal redis registry registryctl trivy"
CHECKS=/tmp/checks

periodic_check() {  # one check of component $1 -> $CHECKS/$1 (empty = healthy, else the error)
    s=$(service_of "$1")
    if [ -e "$CONTROL/unhealthy-$s" ]; then
        err="lab: unhealthy-$s"
    elif http_get "$(addr "$s")" "$(port "$s")" "$(check_path "$s")"; then
        err=""
    else
        err="failed to check health: $s does not answer"
    fi
    printf '%s' "$err" >"$CHECKS/.$1.tmp" && mv "$CHECKS/.$1.tmp" "$CHECKS/$1"
}

health_json() {  # Harbor core's document, from the periodic checkers' last results
    overall=healthy
    body=""
    for name in core $PERIODIC; do
        if [ "$name" = core ]; then
            err=""
            [ -e "$CONTROL/unhealthy-core" ] && err="lab: unhealthy-core"
        else
            err=$(cat "$CHECKS/$name")
        fi
        if [ -n "$err" ]; then
            overall=unhealthy
            item="{\"name\":\"$name\",\"status\":\"unhealthy\",\"error\":\"$err\"}"
        else
            item="{\"name\":\"$name\",\"status\":\"healthy\"}"
        fi
        body="${body:+$body,}$item"
    done
    # Not in Harbor's JSON: which node answered (control/node-name), so the lab's client can
    # tell the new master's answer from the old one's while both still hold the VIP.
    served=$(cat "$CONTROL/node-name" 2>/dev/null)
    printf '%s' "{\"status\":\"$overall\",\"components\":[$body]${served:+,\"served_by\":\"$served\"}}"
}

run_core() {
    www=/tmp/www-core
    mkdir -p "$www/api/v2.0" "$CHECKS"
    printf 'Pong' >"$www/api/v2.0/ping"
    for name in $PERIODIC; do printf 'unknown status' >"$CHECKS/$name"; done
    health_json >"$www/api/v2.0/health"
    for name in $PERIODIC; do
        (while :; do periodic_check "$name"; sleep "${HEALTH_CHECK_PERIOD:-10}"; done) &
    done
    (
        while :; do  # each GET reads the checkers' stored results (as Harbor's handler does)
            health_json >"$www/api/v2.0/.health.tmp" && mv "$www/api/v2.0/.health.tmp" "$www/api/v2.0/health"
            sleep 0.2
        done
    ) &
    exec httpd -f -p "$(port core)" -h "$www"
}

route() {  # one proxied connection: its request line picks the upstream
    IFS= read -r line || exit 0
    path=${line#* }
    path=${path%% *}
    case "$path" in
        /api/* | /service/* | /c/*) up=core ;;
        /v2 | /v2/*) up=registry ;;
        *) up=portal ;;
    esac
    fifo=/tmp/route.$$
    mkfifo "$fifo" || exit 1
    { printf '%s\n' "$line"; exec cat; } >"$fifo" &
    feeder=$!
    if ! nc -w 2 "$(addr "$up")" "$(port "$up")" <"$fifo" 2>/dev/null; then
        printf 'HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nBad Gateway\n'
    fi
    kill "$feeder" 2>/dev/null
    rm -f "$fifo"
}

case "$cmd" in
health)
    [ -e "$CONTROL/unhealthy-$svc" ] && exit 1
    case "$svc" in
        log) netstat -ltn 2>/dev/null | grep -q ":${SYSLOG_PORT:-10514} " ;;
        *) http_get 127.0.0.1 "$(port "$svc")" "$(check_path "$svc")" ;;
    esac
    ;;
run)
    echo "shape: $svc started"  # through Docker's syslog driver to harbor-log's stdout
    if [ -n "${SHAPE_DATA:-}" ]; then
        for d in $SHAPE_DATA; do echo "$(date -u) $svc started" >>"$d/shape-$svc.log"; done
    fi
    case "$svc" in
        core) run_core ;;
        log)
            # A syslog receiver: socat forks one child per TCP connection (Docker's syslog
            # driver keeps one connection per container); the lines go to harbor-log's stdout.
            exec socat "TCP-LISTEN:${SYSLOG_PORT:-10514},reuseaddr,fork" STDOUT
            ;;
        proxy)
            mkdir -p /tmp/www-proxy && echo proxy >/tmp/www-proxy/index.html
            httpd -p "$(port proxy)" -h /tmp/www-proxy
            exec socat "OPENSSL-LISTEN:8443,reuseaddr,fork,cert=${TLS_CERT:-/etc/cert/server.crt},key=${TLS_KEY:-/etc/cert/server.key},verify=0" \
                EXEC:"/shape/shape.sh route"
            ;;
    esac
    p=$(port "$svc")
    [ -n "$p" ] || exec sleep 2147483647
    www="/tmp/www-$svc"
    mkdir -p "$www$(dirname "$(check_path "$svc")")" "$www/v2"
    echo "$svc" >"$www/index.html"
    echo "$svc" >"$www/v2/index.html"
    [ "$(check_path "$svc")" = / ] || echo ok >"$www$(check_path "$svc")"
    conf=/tmp/httpd-$svc.conf
    : >"$conf"
    # The registry's /v2/ asks for credentials (401), as distribution does behind Harbor's token.
    [ "$svc" = registry ] && echo "/v2:harbor:lab-only" >"$conf"
    exec httpd -f -p "$p" -h "$www" -c "$conf"
    ;;
route) route ;;
*)
    echo "usage: shape.sh run|health SERVICE | shape.sh route" >&2
    exit 2
    ;;
esac
