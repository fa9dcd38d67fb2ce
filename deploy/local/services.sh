#!/usr/bin/env bash
# Local services for Order Center's tests: MariaDB, Redis and a Kafka-protocol broker (tansu),
# all on loopback only.
#
#   deploy/local/services.sh up       install what is missing, start what is not answering, wait
#   deploy/local/services.sh status   say what answers and what this script started
#   deploy/local/services.sh down     stop only what this script started (pid files)
#
# Idempotent: services that already answer (started by the machine, by hand or by an earlier
# run) are used as they are and never stopped by this script.
#
# Environment (all optional):
#   OC_SERVICES_DIR           state dir: pid files and logs (default ~/.cache/ordercenter/services)
#   OC_SERVICES_WAIT_SECONDS  how long `up` waits for each service to answer (default 60)
#   OC_TANSU_LOG              tansu's RUST_LOG filter (default warn)
set -euo pipefail

readonly STATE_DIR="${OC_SERVICES_DIR:-$HOME/.cache/ordercenter/services}"
readonly WAIT_SECONDS="${OC_SERVICES_WAIT_SECONDS:-60}"

readonly LOOPBACK=127.0.0.1
readonly MARIADB_PORT=3306
readonly REDIS_PORT=6379
readonly KAFKA_PORT=9092

readonly MARIADB_TEST_USER=oc_test
readonly MARIADB_TEST_PASSWORD=oc_test
readonly MARIADB_DATADIR=/var/lib/mysql
readonly MARIADB_RUN_DIR=/run/mysqld
readonly MARIADB_LOG_DIR=/var/log/mysql
readonly MARIADB_ERROR_LOG=$MARIADB_LOG_DIR/ordercenter-error.log

readonly TANSU_VERSION=0.6.0
# The default tansu build has no usable storage engine; dynostore gives memory://.
readonly TANSU_FEATURES=dynostore,libsql

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

tansu_binary() {
    if command -v tansu >/dev/null 2>&1; then
        command -v tansu
    elif [[ -x $HOME/.cargo/bin/tansu ]]; then
        echo "$HOME/.cargo/bin/tansu"
    else
        return 1
    fi
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

install_tansu() {
    local tansu
    if tansu=$(tansu_binary); then
        # A default-feature build starts but cannot store anything: rebuild it with storage.
        if "$tansu" --help 2>/dev/null | grep -q 'Storage engines:.*dynostore'; then
            return 0
        fi
        log "$tansu has no dynostore (memory) storage engine: reinstalling"
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo not found: needed to install tansu"
    log "cargo install tansu $TANSU_VERSION --features $TANSU_FEATURES (slow: a large build)"
    # Its own target dir: the project's target dir is not locked for the whole build, and
    # an interrupted build resumes where it stopped. Removed once the binary is installed.
    local tansu_target_dir="${OC_TANSU_TARGET_DIR:-$HOME/.cache/ordercenter/tansu-target}"
    CARGO_TARGET_DIR="$tansu_target_dir" \
        cargo install tansu --version "$TANSU_VERSION" --locked --force \
        --features "$TANSU_FEATURES" >&2 ||
        die "cargo install tansu failed"
    rm -rf "$tansu_target_dir"
    tansu_binary >/dev/null || die "tansu installed but not found on PATH nor in ~/.cargo/bin"
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

# A real Kafka round trip: a Metadata v0 request, checking that the broker advertises
# 127.0.0.1:9092 (a wrong advertised listener is the classic way clients connect once and
# then fail). Prints the advertised host:port on success.
kafka_metadata_check() {
    timeout 5 bash -c '
        set -euo pipefail
        exec 3<>"/dev/tcp/$0/$1"
        # size=22, api_key=3 (Metadata), api_version=0, correlation_id=42,
        # client_id="services" (8 bytes), topics=[] (all topics)
        printf "\x00\x00\x00\x16\x00\x03\x00\x00\x00\x00\x00\x2a\x00\x08services\x00\x00\x00\x00" >&3
        read_bytes() { dd bs=1 count="$1" <&3 2>/dev/null | od -An -v -tu1 | tr -s " \n" " "; }
        read -r -a size_bytes <<<"$(read_bytes 4)"
        [[ ${#size_bytes[@]} -eq 4 ]] || exit 1
        size=$(( (size_bytes[0] << 24) | (size_bytes[1] << 16) | (size_bytes[2] << 8) | size_bytes[3] ))
        (( size >= 14 && size < 1048576 )) || exit 1
        read -r -a body <<<"$(read_bytes "$size")"
        [[ ${#body[@]} -eq $size ]] || exit 1
        correlation=$(( (body[0] << 24) | (body[1] << 16) | (body[2] << 8) | body[3] ))
        [[ $correlation -eq 42 ]] || exit 1
        brokers=$(( (body[4] << 24) | (body[5] << 16) | (body[6] << 8) | body[7] ))
        (( brokers >= 1 )) || exit 1
        # first broker: node_id int32, host string (int16 length), port int32
        host_length=$(( (body[12] << 8) | body[13] ))
        host=""
        for (( i = 14; i < 14 + host_length; i++ )); do
            host+=$(printf "\\$(printf "%03o" "${body[i]}")")
        done
        p=$(( 14 + host_length ))
        port=$(( (body[p] << 24) | (body[p + 1] << 16) | (body[p + 2] << 8) | body[p + 3] ))
        echo "$host:$port"
    ' "$LOOPBACK" "$KAFKA_PORT" 2>/dev/null
}

kafka_answers() {
    local advertised
    advertised=$(kafka_metadata_check) || return 1
    [[ $advertised == "$LOOPBACK:$KAFKA_PORT" ]]
}

# --- pid files ---------------------------------------------------------------------------

pid_file() { echo "$STATE_DIR/$1.pid"; }

# Prints the pid of service $1 if this script started it and that process is still the
# expected program ($2 = part of its command name); pid reuse never makes us kill something
# else. Both the command line and the executable are looked at: Debian's redis-server is a
# link to redis-check-rdb and rewrites its title, a reinstalled tansu shows "(deleted)".
started_pid() {
    local name=$1 program=$2 file pid argv0 exe
    file=$(pid_file "$name")
    [[ -s $file ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
    argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1) || true
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || true
    [[ $argv0 == *"$program"* || $exe == *"$program"* ]] || return 1
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

# --- tansu -------------------------------------------------------------------------------

start_tansu() {
    local tansu
    tansu=$(tansu_binary) || die "tansu not found after install"
    log "starting tansu on $LOOPBACK:$KAFKA_PORT (memory storage)"
    # Run from the state dir: tansu reads a .env file from its working directory, and the
    # environment must not override the flags below (CLUSTER_ID, STORAGE_ENGINE, ... are its
    # env names). setsid + nohup + no inherited fds: it outlives this script and never keeps
    # a caller's pipe open.
    (
        cd "$STATE_DIR"
        env -u CLUSTER_ID -u LISTENER_URL -u ADVERTISED_LISTENER_URL -u STORAGE_ENGINE \
            -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT \
            RUST_LOG="${OC_TANSU_LOG:-warn}" \
            setsid nohup "$tansu" broker \
            --cluster-id ordercenter-local \
            --listener-url "tcp://$LOOPBACK:$KAFKA_PORT" \
            --advertised-listener-url "tcp://$LOOPBACK:$KAFKA_PORT" \
            --storage-engine memory://tansu/ \
            </dev/null >>"$STATE_DIR/tansu.log" 2>&1 &
        echo $! >"$(pid_file tansu)"
    )
}

ensure_tansu() {
    install_tansu
    if ! kafka_answers; then
        if tcp_answers "$LOOPBACK" "$KAFKA_PORT"; then
            local advertised
            advertised=$(kafka_metadata_check || true)
            if [[ -n $advertised ]]; then
                die "a Kafka broker on $LOOPBACK:$KAFKA_PORT advertises '$advertised', not $LOOPBACK:$KAFKA_PORT; stop it (not started by this script)"
            fi
            log "something listens on $LOOPBACK:$KAFKA_PORT; waiting for a Kafka metadata answer"
        else
            start_tansu
        fi
        wait_until "tansu (Kafka metadata) on $LOOPBACK:$KAFKA_PORT" "$STATE_DIR/tansu.log" \
            kafka_answers
    fi
    log "tansu ready: $LOOPBACK:$KAFKA_PORT"
}

# --- commands ----------------------------------------------------------------------------

cmd_up() {
    local started=$SECONDS
    install_missing_packages
    ensure_mariadb
    ensure_redis
    ensure_tansu
    log "all services up in $((SECONDS - started))s (state: $STATE_DIR)"
}

describe() {
    local name=$1 program=$2 answering=$3 pid owner
    if pid=$(started_pid "$name" "$program"); then
        owner="started by this script, pid $pid"
    else
        owner="not started by this script"
    fi
    printf '%-8s %-14s %s\n' "$name" "$answering" "$owner"
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
    if kafka_answers; then
        describe tansu tansu "up:$KAFKA_PORT"
    else
        describe tansu tansu "DOWN:$KAFKA_PORT"
        all_up=1
    fi
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
    stop_started tansu tansu
    stop_started redis redis-server
    stop_started mariadb mariadbd
}

main() {
    mkdir -p "$STATE_DIR"
    case "${1:-up}" in
    up) cmd_up ;;
    status) cmd_status ;;
    down) cmd_down ;;
    -h | --help | help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' ;;
    *) die "unknown command '$1' (use up, status or down)" ;;
    esac
}

main "$@"
