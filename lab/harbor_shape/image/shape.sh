#!/bin/sh
# Harbor-shaped stand-in: this one busybox script plays every Harbor v2 service.
#   shape.sh run SERVICE     the service's main process (writes a marker into its data mount)
#   shape.sh health SERVICE  the service's Docker healthcheck
# Unhealthy switch: a file /control/unhealthy-SERVICE makes SERVICE's healthcheck fail and
# (for the services Harbor's /api/v2.0/health reports on) marks its component unhealthy there.
# Each reported service answers HTTP on a loopback port while it runs (busybox httpd), and the
# proxy's health API reports a component healthy only when its service answers, as Harbor's
# core checks its components (a warm standby's proxy must not claim a healthy Harbor).
CONTROL=/control
cmd=$1
svc=$2

component() {  # Harbor health component name of a compose service ("" = not reported)
    case "$1" in
        postgresql) echo database ;;
        core|jobservice|portal|redis|registry|registryctl) echo "$1" ;;
        *) echo "" ;;
    esac
}

port() {  # the loopback port a reported service answers on while it runs ("" = none)
    case "$1" in
        core) echo 18080 ;; portal) echo 18081 ;; jobservice) echo 18082 ;;
        registryctl) echo 18083 ;; postgresql) echo 18432 ;; redis) echo 18379 ;;
        registry) echo 18500 ;; *) echo "" ;;
    esac
}

health_json() {  # a component is healthy when not switched off AND its service answers
    overall=healthy
    body=""
    for s in core jobservice portal postgresql redis registry registryctl; do
        name=$(component "$s")
        if [ -e "$CONTROL/unhealthy-$s" ]; then
            overall=unhealthy
            item="{\"name\":\"$name\",\"status\":\"unhealthy\",\"error\":\"shape: $s switched unhealthy\"}"
        elif ! nc -w 1 127.0.0.1 "$(port "$s")" </dev/null >/dev/null 2>&1; then
            overall=unhealthy
            item="{\"name\":\"$name\",\"status\":\"unhealthy\",\"error\":\"shape: $s not answering\"}"
        else
            item="{\"name\":\"$name\",\"status\":\"healthy\"}"
        fi
        body="${body:+$body,}$item"
    done
    # Not in Harbor's JSON: which node answered (control/node-name), so the lab's client can
    # tell the new master's answer from the old one's while both still hold the VIP.
    served=$(cat "$CONTROL/node-name" 2>/dev/null)
    echo "{\"status\":\"$overall\",\"components\":[$body]${served:+,\"served_by\":\"$served\"}}"
}

case "$cmd" in
health)
    [ -e "$CONTROL/unhealthy-$svc" ] && exit 1
    if [ "$svc" = proxy ]; then
        pidof openssl >/dev/null || exit 1
    fi
    exit 0
    ;;
run)
    if [ -n "${SHAPE_DATA:-}" ]; then
        echo "$(date -u) $svc started" >>"$SHAPE_DATA/shape-$svc.log"
    fi
    if [ "$svc" != proxy ]; then
        p=$(port "$svc")
        [ -n "$p" ] || exec sleep 2147483647
        mkdir -p "/tmp/www-$svc" && echo "$svc" >"/tmp/www-$svc/index.html"
        exec httpd -f -p "127.0.0.1:$p" -h "/tmp/www-$svc"
    fi
    mkdir -p /tmp/www/api/v2.0
    cd /tmp/www || exit 1
    echo Pong >api/v2.0/ping
    health_json >api/v2.0/health
    (
        while :; do
            health_json >api/v2.0/.health.tmp && mv api/v2.0/.health.tmp api/v2.0/health
            sleep 0.2
        done
    ) &
    exec openssl s_server -quiet -accept "${HTTPS_BIND:-0.0.0.0}:${HTTPS_PORT:-8443}" \
        -cert /shape/cert.pem -key /shape/key.pem -WWW
    ;;
*)
    echo "usage: shape.sh run|health SERVICE" >&2
    exit 2
    ;;
esac
