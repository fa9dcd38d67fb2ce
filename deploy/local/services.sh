#!/usr/bin/env bash
# Local services for Order Center's tests, all on loopback only: MariaDB and Redis from Debian's
# packages; Apache Kafka (KRaft), OpenSearch and HBase with its Thrift1 server from Maven
# Central (deploy/local/engines/, see its README).
#
#   deploy/local/services.sh up       install what is missing, start what is not answering, wait
#   deploy/local/services.sh up-databases   the same for MariaDB and Redis alone (the bench: the
#                                     engines' JVMs take both cores in bursts, loadtest/PROFILE.md)
#   deploy/local/services.sh status   say what answers and what this script started
#   deploy/local/services.sh down     stop only what this script started (pid files)
#   deploy/local/services.sh classpath kafka|opensearch|hbase   an engine's jars (for its tools)
#
# Idempotent: services that already answer (started by the machine, by hand or by an earlier
# run) are used as they are and never stopped by this script.
#
# Environment (all optional):
#   OC_SERVICES_DIR           state dir: pid files and logs (default ~/.cache/ordercenter/services)
#   OC_SERVICES_WAIT_SECONDS  how long `up` waits for MariaDB and Redis to answer (default 60)
#   OC_ENGINES_WAIT_SECONDS   how long `up` waits for each JVM engine to answer (default 240)
#   OC_KAFKA_PORT, OC_OPENSEARCH_PORT, OC_HBASE_THRIFT_PORT   engine ports (9092, 9200, 9090)
#   OC_KAFKA_HEAP, OC_OPENSEARCH_HEAP, OC_HBASE_HEAP          JVM heaps (512m, 1g, 1g)
#   OC_ENGINES_CACHE          resolved classpaths (default ~/.cache/ordercenter/engines)
set -euo pipefail

readonly STATE_DIR="${OC_SERVICES_DIR:-$HOME/.cache/ordercenter/services}"
readonly WAIT_SECONDS="${OC_SERVICES_WAIT_SECONDS:-60}"

readonly LOOPBACK=127.0.0.1
readonly MARIADB_PORT=3306
readonly REDIS_PORT=6379
readonly KAFKA_PORT="${OC_KAFKA_PORT:-9092}"

readonly MARIADB_TEST_USER=oc_test
readonly MARIADB_TEST_PASSWORD=oc_test
readonly MARIADB_DATADIR=/var/lib/mysql
readonly MARIADB_RUN_DIR=/run/mysqld
readonly MARIADB_LOG_DIR=/var/log/mysql
readonly MARIADB_ERROR_LOG=$MARIADB_LOG_DIR/ordercenter-error.log


log() { printf '[services] %s\n' "$*" >&2; }
die() {
    printf '[services] error: %s\n' "$*" >&2
    exit 1
}

as_root() {
    if [[ $(id -u) -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        die "need root (or passwordless sudo) to run: $*"
    fi
}

# --- installing --------------------------------------------------------------------------

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "apt-get not found: install these by hand: $*"
    if [[ $APT_UPDATED -eq 0 ]]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "$@" >&2
}

mariadb_client() {
    if command -v mariadb >/dev/null 2>&1; then
        echo mariadb
    elif command -v mysql >/dev/null 2>&1; then
        echo mysql
    else
        return 1
    fi
}

mariadb_server_binary() {
    local candidate
    for candidate in /usr/sbin/mariadbd /usr/sbin/mysqld; do
        if [[ -x $candidate ]]; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

redis_server_binary() {
    command -v redis-server 2>/dev/null || { [[ -x /usr/bin/redis-server ]] && echo /usr/bin/redis-server; }
}


install_missing_packages() {
    local packages=()
    if ! mariadb_server_binary >/dev/null || ! mariadb_client >/dev/null; then
        packages+=(mariadb-server mariadb-client)
    fi
    if ! redis_server_binary >/dev/null; then
        packages+=(redis-server)
    fi
    if [[ ${#packages[@]} -gt 0 ]]; then
        apt_install "${packages[@]}"
    fi
}


# --- probes ------------------------------------------------------------------------------

tcp_answers() {
    local host=$1 port=$2
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
}

mariadb_root() {
    # Root through the unix socket (unix_socket auth, as Debian sets it up).
    local client
    client=$(mariadb_client) || return 1
    "$client" --protocol=socket -uroot --connect-timeout=3 "$@"
}

mariadb_answers_as_root() {
    mariadb_root -N -e 'SELECT 1' >/dev/null 2>&1
}

mariadb_answers_as_test_user() {
    local client
    client=$(mariadb_client) || return 1
    "$client" --protocol=tcp -h "$LOOPBACK" -P "$MARIADB_PORT" \
        -u "$MARIADB_TEST_USER" -p"$MARIADB_TEST_PASSWORD" --connect-timeout=3 \
        -N -e 'SELECT 1' >/dev/null 2>&1
}

redis_answers() {
    # PING over a raw socket: needs neither redis-cli nor a running redis of a given version.
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "PING\r\n" >&3
        IFS= read -r reply <&3 || exit 1
        [[ $reply == "+PONG"* ]]
    ' "$LOOPBACK" "$REDIS_PORT" 2>/dev/null
}


# --- pid files ---------------------------------------------------------------------------

pid_file() { echo "$STATE_DIR/$1.pid"; }

# Prints the pid of service $1 if this script started it and that process is still the
# expected program ($2 = part of its command name, or a JVM's main class); pid reuse never
# makes us kill something else. The command name, the executable and (for a JVM, whose
# command is `java`) the whole command line are looked at: Debian's redis-server is a link to
# redis-check-rdb and rewrites its title.
started_pid() {
    local name=$1 program=$2 file pid argv0 exe command_line
    file=$(pid_file "$name")
    [[ -s $file ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1) || true
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || true
    command_line=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || true
    [[ $argv0 == *"$program"* || $exe == *"$program"* ||
        ($argv0 == *java && $command_line == *" $program "*) ]] || return 1
    echo "$pid"
}

wait_until() {
    local description=$1 log_file=$2
    shift 2
    local deadline=$((SECONDS + WAIT_SECONDS))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            if [[ -n $log_file && -f $log_file ]]; then
                log "last lines of $log_file:"
                tail -n 20 "$log_file" >&2 || true
            fi
            die "$description did not answer within ${WAIT_SECONDS}s"
        fi
        sleep 1
    done
}

# --- MariaDB -----------------------------------------------------------------------------

start_mariadb() {
    local server
    server=$(mariadb_server_binary) || die "mariadbd not found after install"
    as_root mkdir -p "$MARIADB_RUN_DIR"
    as_root chown mysql:mysql "$MARIADB_RUN_DIR"
    if [[ ! -d $MARIADB_DATADIR/mysql ]]; then
        log "initialising the MariaDB data directory $MARIADB_DATADIR"
        local install_db
        install_db=$(command -v mariadb-install-db || command -v mysql_install_db) ||
            die "no mariadb-install-db to initialise $MARIADB_DATADIR"
        as_root "$install_db" --user=mysql --datadir="$MARIADB_DATADIR" \
            --auth-root-authentication-method=socket >>"$STATE_DIR/mariadb.log" 2>&1 ||
            die "mariadb-install-db failed, see $STATE_DIR/mariadb.log"
    fi
    log "starting MariaDB on $LOOPBACK:$MARIADB_PORT"
    # max-connections: the default 151 is reached by a bench's servers (32 connections per
    # shard each) beside parallel test binaries, and a refused connection fails a test
    # mariadbd writes its error log as the mysql user, which cannot write into root's home:
    # it goes to the package's log dir; start-up output before that goes to our state dir.
    as_root mkdir -p "$MARIADB_LOG_DIR"
    as_root chown mysql:mysql "$MARIADB_LOG_DIR"
    as_root start-stop-daemon --start --oknodo --background \
        --make-pidfile --pidfile "$(pid_file mariadb)" \
        --output "$STATE_DIR/mariadb.log" \
        --exec "$server" -- \
        --user=mysql --datadir="$MARIADB_DATADIR" \
        --bind-address="$LOOPBACK" --port="$MARIADB_PORT" \
        --socket="$MARIADB_RUN_DIR/mysqld.sock" --log-error="$MARIADB_ERROR_LOG" \
        --max-connections=1000 \
        >>"$STATE_DIR/mariadb.log" 2>&1 ||
        die "starting mariadbd failed, see $STATE_DIR/mariadb.log"
}

create_mariadb_test_user() {
    local host statements=""
    for host in 127.0.0.1 localhost; do
        statements+="CREATE USER IF NOT EXISTS '$MARIADB_TEST_USER'@'$host' IDENTIFIED BY '$MARIADB_TEST_PASSWORD';"
        statements+="ALTER USER '$MARIADB_TEST_USER'@'$host' IDENTIFIED BY '$MARIADB_TEST_PASSWORD';"
        statements+="GRANT ALL PRIVILEGES ON *.* TO '$MARIADB_TEST_USER'@'$host';"
    done
    mariadb_root -e "$statements" ||
        die "could not create the MariaDB user $MARIADB_TEST_USER as root over the unix socket"
}

ensure_mariadb() {
    if ! tcp_answers "$LOOPBACK" "$MARIADB_PORT" || ! mariadb_answers_as_root; then
        if tcp_answers "$LOOPBACK" "$MARIADB_PORT"; then
            # Something listens on 3306 but root cannot log in over the socket yet: it may
            # be starting up. Do not start a second server.
            log "something listens on $LOOPBACK:$MARIADB_PORT; waiting for it to accept root"
        else
            start_mariadb
        fi
        wait_until "MariaDB (root over the unix socket)" "$MARIADB_ERROR_LOG" \
            mariadb_answers_as_root
        wait_until "MariaDB on $LOOPBACK:$MARIADB_PORT" "$MARIADB_ERROR_LOG" \
            tcp_answers "$LOOPBACK" "$MARIADB_PORT"
    fi
    create_mariadb_test_user
    wait_until "MariaDB as $MARIADB_TEST_USER on $LOOPBACK:$MARIADB_PORT" "" \
        mariadb_answers_as_test_user
    log "MariaDB ready: mysql://$MARIADB_TEST_USER:***@$LOOPBACK:$MARIADB_PORT"
}

# --- Redis -------------------------------------------------------------------------------

start_redis() {
    local server
    server=$(redis_server_binary) || die "redis-server not found after install"
    mkdir -p "$STATE_DIR/redis"
    log "starting Redis on $LOOPBACK:$REDIS_PORT"
    # Nothing kept on disk: tests create what they need.
    "$server" --daemonize yes --bind "$LOOPBACK" -::1 --port "$REDIS_PORT" \
        --save "" --appendonly no --dir "$STATE_DIR/redis" \
        --pidfile "$(pid_file redis)" --logfile "$STATE_DIR/redis.log" ||
        die "starting redis-server failed, see $STATE_DIR/redis.log"
}

ensure_redis() {
    if ! redis_answers; then
        if tcp_answers "$LOOPBACK" "$REDIS_PORT"; then
            log "something listens on $LOOPBACK:$REDIS_PORT; waiting for it to answer PING"
        else
            start_redis
        fi
        wait_until "Redis on $LOOPBACK:$REDIS_PORT" "$STATE_DIR/redis.log" redis_answers
    fi
    log "Redis ready: redis://$LOOPBACK:$REDIS_PORT"
}


# --- Kafka, OpenSearch, HBase ------------------------------------------------------------

# shellcheck source=engines/engines.sh
source "$(dirname "${BASH_SOURCE[0]}")/engines/engines.sh"

# --- commands ----------------------------------------------------------------------------

cmd_up() {
    local started=$SECONDS
    install_missing_packages
    ensure_mariadb
    ensure_redis
    engines_up
    log "all services up in $((SECONDS - started))s (state: $STATE_DIR)"
}

cmd_up_databases() {
    install_missing_packages
    ensure_mariadb
    ensure_redis
}

describe() {
    local name=$1 program=$2 answering=$3 pid owner
    if pid=$(started_pid "$name" "$program"); then
        owner="started by this script, pid $pid"
    else
        owner="not started by this script"
    fi
    printf '%-13s %-14s %s\n' "$name" "$answering" "$owner"
}

cmd_status() {
    local all_up=0
    if mariadb_answers_as_test_user; then
        describe mariadb mariadbd "up:$MARIADB_PORT"
    else
        describe mariadb mariadbd "DOWN:$MARIADB_PORT"
        all_up=1
    fi
    if redis_answers; then
        describe redis redis-server "up:$REDIS_PORT"
    else
        describe redis redis-server "DOWN:$REDIS_PORT"
        all_up=1
    fi
    engines_status || all_up=1
    echo "state: $STATE_DIR"
    return "$all_up"
}

# A zombie (exited, not yet reaped) counts as gone.
process_alive() {
    local state
    state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

stop_started() {
    local name=$1 program=$2 pid file
    file=$(pid_file "$name")
    if ! pid=$(started_pid "$name" "$program"); then
        log "$name: not started by this script, left alone"
        rm -f "$file"
        return 0
    fi
    log "stopping $name (pid $pid)"
    as_root kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while process_alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.5
    done
    if process_alive "$pid"; then
        log "$name (pid $pid) ignored SIGTERM for 30s: SIGKILL"
        as_root kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$file"
}

cmd_down() {
    engines_down
    stop_started redis redis-server
    stop_started mariadb mariadbd
}

main() {
    mkdir -p "$STATE_DIR"
    case "${1:-up}" in
    up) cmd_up ;;
    up-databases) cmd_up_databases ;;
    status) cmd_status ;;
    down) cmd_down ;;
    # the resolved classpath of one engine (kafka, opensearch, hbase), for its own tools
    classpath) engine_classpath "${2:?usage: services.sh classpath ENGINE}" ;;
    -h | --help | help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$1' (use up, up-databases, status or down)" ;;
    esac
}

main "$@"
