#!/bin/bash
# Container health check: GET /healthz on the port of OC_LISTEN (the API, or the /metrics and
# /healthz listener of `ordercenter relay` / `ordercenter project`); healthy on HTTP 200.
# bash's /dev/tcp keeps curl out of the runtime image. Usage: oc-healthcheck [port]
set -u
port=${1:-${OC_LISTEN##*:}}
port=${port:-8080}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
IFS= read -r -t 3 status <&3 || exit 1
case $status in
    "HTTP/1.1 200 "*) exit 0 ;;
    *) echo "unhealthy: ${status%$'\r'}" >&2; exit 1 ;;
esac
