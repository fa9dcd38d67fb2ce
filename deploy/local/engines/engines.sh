# shellcheck shell=bash
# The JVM engines of the test command: Apache Kafka (KRaft), OpenSearch (embedded node) and
# HBase (standalone, with its Thrift1 server), all from Maven Central, all on loopback.
# Sourced by deploy/local/services.sh, which provides log, die, as_root, pid_file,
# started_pid, process_alive, tcp_answers, wait_until and STATE_DIR.
#
# Each engine is a Maven module beside this file (a pom with its dependencies, nothing to
# build but one launcher class for OpenSearch). Its classpath is resolved once with
# `mvn dependency:build-classpath` into ~/.cache/ordercenter/engines/<engine>/, keyed by the
# pom's hash; afterwards a start runs `java -cp` straight away and Maven is not called
# (nothing is downloaded while ~/.m2 holds the jars).
#
# `engines_up` starts whatever does not answer, all three at once, and waits for each to
# answer a real request: Kafka a Metadata request advertising 127.0.0.1:$KAFKA_PORT,
# OpenSearch `_cluster/health?wait_for_status=yellow`, HBase a Thrift1 `getTableNames` and a
# scan of `hbase:meta` (so the region server serves). It prints each engine's start time.
# Data lives under $STATE_DIR/<engine>/ and is wiped at each start: tests make their own
# topics, indices and tables with unique names, and a fresh directory never holds a stale
# lock or a half-written log.

readonly ENGINES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly ENGINES_CACHE="${OC_ENGINES_CACHE:-$HOME/.cache/ordercenter/engines}"
readonly ENGINES_WAIT_SECONDS="${OC_ENGINES_WAIT_SECONDS:-240}"
# The JDK the engines run on: OpenSearch 2.19 and HBase 2.6 support Java 17 (not 23+).
readonly ENGINES_JAVA="${OC_ENGINES_JAVA:-java}"
# Maven's dependency plugin by full coordinates: no plugin-prefix look-up, so it also runs
# offline. 2.8 is the version Maven 3.8's super POM names.
readonly MAVEN_BUILD_CLASSPATH=org.apache.maven.plugins:maven-dependency-plugin:2.8:build-classpath

readonly KAFKA_CONTROLLER_PORT="${OC_KAFKA_CONTROLLER_PORT:-9093}"
# A second listener for fault tests: it advertises 127.0.0.1:$KAFKA_FAULT_PROXY_PORT, where
# such a test puts a proxy it can cut (tests/support's TcpProxy::start_on) in front of
# 127.0.0.1:$KAFKA_FAULT_PORT, so every connection its client makes (bootstrap and partition
# leader) crosses the proxy. Nothing listens on the proxy port otherwise.
readonly KAFKA_FAULT_PORT="${OC_KAFKA_FAULT_PORT:-9094}"
readonly KAFKA_FAULT_PROXY_PORT="${OC_KAFKA_FAULT_PROXY_PORT:-9095}"
readonly OPENSEARCH_PORT="${OC_OPENSEARCH_PORT:-9200}"
readonly OPENSEARCH_TRANSPORT_PORT="${OC_OPENSEARCH_TRANSPORT_PORT:-9300}"
readonly HBASE_THRIFT_PORT="${OC_HBASE_THRIFT_PORT:-9090}"
readonly HBASE_ZOOKEEPER_PORT=2181
readonly HBASE_MASTER_PORT=16000
readonly HBASE_REGIONSERVER_PORT=16020

# Heaps sized for the 24 GiB test box, beside nextest's processes and MariaDB.
readonly KAFKA_HEAP="${OC_KAFKA_HEAP:-512m}"
readonly OPENSEARCH_HEAP="${OC_OPENSEARCH_HEAP:-1g}"
readonly HBASE_HEAP="${OC_HBASE_HEAP:-1g}"
readonly HBASE_THRIFT_HEAP="${OC_HBASE_THRIFT_HEAP:-256m}"

# Main classes: also what `started_pid` looks for in a pid's command line.
readonly KAFKA_MAIN=kafka.Kafka
readonly OPENSEARCH_MAIN=org.ordercenter.engines.EmbeddedOpenSearch
readonly HBASE_MASTER_MAIN=org.apache.hadoop.hbase.master.HMaster
readonly HBASE_THRIFT_MAIN=org.apache.hadoop.hbase.thrift.ThriftServer

# From HBase's bin/hbase (add_jdk11_jvm_flags) and its hbase-env defaults: the shaded netty
# and Hadoop reach into JDK internals.
readonly HBASE_JVM_FLAGS=(
    -XX:+UseG1GC
    -Djava.net.preferIPv4Stack=true
    -Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true
    --add-modules jdk.unsupported
    --add-opens java.base/java.io=ALL-UNNAMED
    --add-opens java.base/java.nio=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    --add-opens java.base/java.util.concurrent=ALL-UNNAMED
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.security.jgss/sun.security.krb5=ALL-UNNAMED
    --add-exports java.base/sun.net.dns=ALL-UNNAMED
    --add-exports java.base/sun.net.util=ALL-UNNAMED
)

# --- tools -------------------------------------------------------------------------------

ensure_java_and_maven() {
    local packages=()
    command -v "$ENGINES_JAVA" >/dev/null 2>&1 || packages+=(openjdk-17-jdk-headless)
    command -v mvn >/dev/null 2>&1 || packages+=(maven)
    if [[ ${#packages[@]} -gt 0 ]]; then
        apt_install "${packages[@]}"
    fi
    local version
    version=$("$ENGINES_JAVA" -version 2>&1 | head -n 1)
    [[ $version =~ \"(1[7-9]|2[0-2])[.\"] ]] ||
        die "the engines need Java 17 to 22 (set OC_ENGINES_JAVA); found: $version"
}

# engine_classpath ENGINE: prints the cached classpath of the Maven module, resolving it
# with Maven when the pom changed or a jar is gone. Offline first: a warm ~/.m2 needs no
# network.
engine_classpath() {
    local engine=$1 module="$ENGINES_DIR/$1" cache="$ENGINES_CACHE/$1"
    local pom_hash classpath_file="$cache/classpath.txt" hash_file="$cache/pom.sha256"
    pom_hash=$(sha256sum "$module/pom.xml" | cut -d' ' -f1)
    if [[ -s $classpath_file && -f $hash_file && $(cat "$hash_file") == "$pom_hash" ]] &&
        classpath_jars_exist "$classpath_file"; then
        cat "$classpath_file"
        return 0
    fi
    mkdir -p "$cache"
    local started=$SECONDS maven_log="$cache/maven.log"
    log "$engine: resolving its Maven dependencies (cached in ~/.m2 for later runs)"
    if ! mvn -B -q -o -f "$module/pom.xml" "$MAVEN_BUILD_CLASSPATH" \
        -Dmdep.outputFile="$classpath_file.new" >"$maven_log" 2>&1; then
        mvn -B -q -f "$module/pom.xml" "$MAVEN_BUILD_CLASSPATH" \
            -Dmdep.outputFile="$classpath_file.new" >"$maven_log" 2>&1 || {
            tail -n 30 "$maven_log" >&2
            die "$engine: mvn dependency:build-classpath failed (log: $maven_log)"
        }
    fi
    mv "$classpath_file.new" "$classpath_file"
    echo "$pom_hash" >"$hash_file"
    log "$engine: classpath resolved in $((SECONDS - started))s"
    cat "$classpath_file"
}

classpath_jars_exist() {
    local jar
    while IFS= read -r jar; do
        [[ -z $jar || -f $jar ]] || return 1
    done < <(tr ':' '\n' <"$1")
}

# Compiles the OpenSearch launcher (one class) into the cache, again only when it changed.
opensearch_launcher_classes() {
    local classpath=$1 cache="$ENGINES_CACHE/opensearch"
    local source="$ENGINES_DIR/opensearch/src/main/java/org/ordercenter/engines/EmbeddedOpenSearch.java"
    local source_hash classes="$cache/classes"
    source_hash=$( (cat "$source" && echo "$classpath") | sha256sum | cut -d' ' -f1)
    if [[ ! -f $classes/source.sha256 || $(cat "$classes/source.sha256") != "$source_hash" ]]; then
        rm -rf "$classes"
        mkdir -p "$classes"
        javac_binary >/dev/null || die "javac not found (a JDK, not only a JRE, is needed)"
        "$(javac_binary)" -nowarn -d "$classes" -cp "$classpath" "$source" >&2 ||
            die "compiling $source failed"
        echo "$source_hash" >"$classes/source.sha256"
    fi
    echo "$classes"
}

javac_binary() {
    local java_path
    java_path=$(readlink -f "$(command -v "$ENGINES_JAVA")") || return 1
    if [[ -x ${java_path%/java}/javac ]]; then
        echo "${java_path%/java}/javac"
    else
        command -v javac
    fi
}

# launch NAME MAIN_CLASS LOG_FILE COMMAND...: starts a JVM detached from this script (its own
# session, no inherited fds) and records its pid.
launch() {
    local name=$1 log_file=$3
    shift 3
    (
        setsid nohup "$@" </dev/null >>"$log_file" 2>&1 &
        echo $! >"$(pid_file "$name")"
    )
}

# --- probes ------------------------------------------------------------------------------

# A real Kafka round trip: a Metadata v0 request (still served by Kafka 4), checking that the
# broker advertises 127.0.0.1:$KAFKA_PORT (a wrong advertised listener is the classic way
# clients connect once and then fail). Prints the advertised host:port on success.
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

opensearch_answers() {
    local health
    health=$(curl -sf --max-time 5 \
        "http://$LOOPBACK:$OPENSEARCH_PORT/_cluster/health?wait_for_status=yellow&timeout=2s") ||
        return 1
    [[ $health == *'"status":"green"'* || $health == *'"status":"yellow"'* ]]
}

# A Thrift1 call (binary protocol, buffered transport: what the hbase-thrift crate speaks):
# `getTableNames`, answered by the master through the Thrift server. Prints the table count.
hbase_thrift_table_count() {
    timeout 10 bash -c '
        set -euo pipefail
        exec 3<>"/dev/tcp/$0/$1"
        # 80 01 00 01 (strict binary, CALL), name "getTableNames" (13 bytes), seqid 1,
        # empty argument struct (field stop)
        printf "\x80\x01\x00\x01\x00\x00\x00\x0dgetTableNames\x00\x00\x00\x01\x00" >&3
        read_bytes() { dd bs=1 count="$1" <&3 2>/dev/null | od -An -v -tu1 | tr -s " \n" " "; }
        read -r -a head <<<"$(read_bytes 4)"
        # 80 01 00 02: a REPLY (00 03 would be an EXCEPTION)
        [[ "${head[*]}" == "128 1 0 2" ]] || exit 1
        read -r -a length <<<"$(read_bytes 4)"
        name_length=$(( (length[2] << 8) | length[3] ))
        read_bytes $(( name_length + 4 )) >/dev/null
        # the result struct: field 0 of type list (15), elements of type binary (11), size
        read -r -a field <<<"$(read_bytes 3)"
        [[ "${field[*]}" == "15 0 0" ]] || exit 1
        read -r -a list <<<"$(read_bytes 5)"
        [[ ${list[0]} -eq 11 ]] || exit 1
        echo $(( (list[1] << 24) | (list[2] << 16) | (list[3] << 8) | list[4] ))
    ' "$LOOPBACK" "$HBASE_THRIFT_PORT" 2>/dev/null
}

# `getTableRegions("hbase:meta")`: answered only once the region server serves hbase:meta,
# i.e. tables can be created and written. Succeeds on a REPLY with at least one region.
hbase_meta_is_served() {
    timeout 10 bash -c '
        set -euo pipefail
        exec 3<>"/dev/tcp/$0/$1"
        # CALL "getTableRegions" (15 bytes), seqid 2, args: field 1 binary "hbase:meta" (10)
        printf "\x80\x01\x00\x01\x00\x00\x00\x0fgetTableRegions\x00\x00\x00\x02\x0b\x00\x01\x00\x00\x00\x0ahbase:meta\x00" >&3
        read_bytes() { dd bs=1 count="$1" <&3 2>/dev/null | od -An -v -tu1 | tr -s " \n" " "; }
        read -r -a head <<<"$(read_bytes 4)"
        [[ "${head[*]}" == "128 1 0 2" ]] || exit 1
        read -r -a length <<<"$(read_bytes 4)"
        name_length=$(( (length[2] << 8) | length[3] ))
        read_bytes $(( name_length + 4 )) >/dev/null
        # field 0 (success): a list (15) of structs (12) with at least one element
        read -r -a field <<<"$(read_bytes 3)"
        [[ "${field[*]}" == "15 0 0" ]] || exit 1
        read -r -a list <<<"$(read_bytes 5)"
        [[ ${list[0]} -eq 12 ]] || exit 1
        (( ((list[1] << 24) | (list[2] << 16) | (list[3] << 8) | list[4]) >= 1 ))
    ' "$LOOPBACK" "$HBASE_THRIFT_PORT" 2>/dev/null
}

hbase_answers() {
    hbase_thrift_table_count >/dev/null && hbase_meta_is_served
}

# --- starting ----------------------------------------------------------------------------

start_kafka() {
    local classpath=$1 dir="$STATE_DIR/kafka"
    rm -rf "$dir"
    mkdir -p "$dir/data"
    # One node that is broker and controller (KRaft), loopback only. Replication factors of
    # the internal topics are 1: there is one broker.
    cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$LOOPBACK:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$LOOPBACK:$KAFKA_PORT,CONTROLLER://$LOOPBACK:$KAFKA_CONTROLLER_PORT,FAULT://$LOOPBACK:$KAFKA_FAULT_PORT
advertised.listeners=PLAINTEXT://$LOOPBACK:$KAFKA_PORT,FAULT://$LOOPBACK:$KAFKA_FAULT_PROXY_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,FAULT:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Tests make hundreds of small topics: keep each one's files small.
log.segment.bytes=16777216
log.index.size.max.bytes=1048576
EOF
    local java_options=(
        "-Xms$KAFKA_HEAP" "-Xmx$KAFKA_HEAP" -XX:+UseG1GC
        "-Dlog4j2.configurationFile=$ENGINES_DIR/kafka/log4j2.properties"
        "-Dkafka.logs.dir=$dir"
    )
    # Format the (fresh) log dir with a new cluster id; kafka-storage.sh's main class.
    "$ENGINES_JAVA" -Xmx256m "-Dlog4j2.configurationFile=$ENGINES_DIR/kafka/log4j2.properties" \
        -cp "$classpath" kafka.tools.StorageTool \
        format --cluster-id "$(kafka_cluster_id)" --config "$dir/server.properties" \
        >>"$dir/kafka.log" 2>&1 || die "kafka storage format failed, see $dir/kafka.log"
    log "starting Kafka on $LOOPBACK:$KAFKA_PORT (KRaft, heap $KAFKA_HEAP)"
    launch kafka "$KAFKA_MAIN" "$dir/kafka.log" \
        "$ENGINES_JAVA" "${java_options[@]}" -cp "$classpath" "$KAFKA_MAIN" "$dir/server.properties"
}

# A KRaft cluster id: 16 random bytes, base64url without padding (what
# `kafka-storage random-uuid` prints).
kafka_cluster_id() {
    head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

start_opensearch() {
    local classpath=$1 classes=$2 dir="$STATE_DIR/opensearch"
    rm -rf "$dir"
    mkdir -p "$dir/home"
    log "starting OpenSearch on $LOOPBACK:$OPENSEARCH_PORT (embedded node, heap $OPENSEARCH_HEAP)"
    launch opensearch "$OPENSEARCH_MAIN" "$dir/opensearch.log" \
        "$ENGINES_JAVA" "-Xms$OPENSEARCH_HEAP" "-Xmx$OPENSEARCH_HEAP" -XX:+UseG1GC \
        "-Dlog4j2.configurationFile=$ENGINES_DIR/opensearch/log4j2.properties" \
        -Dlog4j2.disable.jmx=true -Djava.awt.headless=true -Dfile.encoding=UTF-8 \
        -cp "$classes:$classpath" "$OPENSEARCH_MAIN" \
        "$dir/home" "$OPENSEARCH_PORT" "$OPENSEARCH_TRANSPORT_PORT"
}

start_hbase() {
    local classpath=$1 dir="$STATE_DIR/hbase"
    rm -rf "$dir"
    mkdir -p "$dir/conf" "$dir/data"
    sed "s#@DATA_DIR@#$dir/data#g; s#@THRIFT_PORT@#$HBASE_THRIFT_PORT#g" \
        "$ENGINES_DIR/hbase/conf/hbase-site.xml" >"$dir/conf/hbase-site.xml"
    cp "$ENGINES_DIR/hbase/conf/log4j2.properties" "$dir/conf/"
    local java_options=(
        "${HBASE_JVM_FLAGS[@]}" "-Dlog4j2.configurationFile=$dir/conf/log4j2.properties"
        "-Dhbase.log.dir=$dir"
    )
    log "starting HBase (standalone: ZooKeeper, master, region server; heap $HBASE_HEAP)" \
        "and its Thrift1 server on $LOOPBACK:$HBASE_THRIFT_PORT (heap $HBASE_THRIFT_HEAP)"
    launch hbase-master "$HBASE_MASTER_MAIN" "$dir/master.log" \
        "$ENGINES_JAVA" "-Xms$HBASE_HEAP" "-Xmx$HBASE_HEAP" "${java_options[@]}" \
        -cp "$dir/conf:$classpath" "$HBASE_MASTER_MAIN" start
    # The Thrift server connects to ZooKeeper lazily, on its first call: it can start now.
    # Default server type (thread pool), unframed binary: what the hbase-thrift crate speaks.
    launch hbase-thrift "$HBASE_THRIFT_MAIN" "$dir/thrift.log" \
        "$ENGINES_JAVA" "-Xms$HBASE_THRIFT_HEAP" "-Xmx$HBASE_THRIFT_HEAP" "${java_options[@]}" \
        -cp "$dir/conf:$classpath" "$HBASE_THRIFT_MAIN" \
        -b "$LOOPBACK" -p "$HBASE_THRIFT_PORT" start
}

# refuse_busy_port NAME PORT: something not answering as NAME holds a port NAME needs.
refuse_busy_port() {
    if tcp_answers "$LOOPBACK" "$2"; then
        die "$LOOPBACK:$2 is taken by something that does not answer as $1; stop it first"
    fi
}

# Waits for ENGINE (readiness function $2, log $3) and prints how long it took since $4.
# Runs in a background subshell per engine; its exit status is the result.
await_engine() {
    local engine=$1 probe=$2 log_file=$3 launched_at=$4
    local deadline=$((launched_at + ENGINES_WAIT_SECONDS))
    until "$probe"; do
        if ((SECONDS >= deadline)); then
            log "$engine: no answer within ${ENGINES_WAIT_SECONDS}s; last lines of $log_file:"
            tail -n 40 "$log_file" >&2 || true
            return 1
        fi
        sleep 1
    done
    log "$engine ready in $((SECONDS - launched_at))s"
}

engines_up() {
    ensure_java_and_maven
    local kafka_classpath opensearch_classpath opensearch_classes hbase_classpath
    kafka_classpath=$(engine_classpath kafka)
    opensearch_classpath=$(engine_classpath opensearch)
    opensearch_classes=$(opensearch_launcher_classes "$opensearch_classpath")
    hbase_classpath=$(engine_classpath hbase)

    local waiting=() engine
    # Before Kafka, the tests ran against tansu, started by an earlier version of
    # services.sh: a broker that answers Metadata too. Stop it rather than test against it.
    if started_pid tansu tansu >/dev/null; then
        log "stopping the tansu broker an earlier services.sh started: Kafka replaces it"
        stop_started tansu tansu
    fi
    if kafka_answers; then
        log "Kafka already answers on $LOOPBACK:$KAFKA_PORT: used as it is"
    else
        refuse_busy_port Kafka "$KAFKA_PORT"
        refuse_busy_port "Kafka's controller" "$KAFKA_CONTROLLER_PORT"
        refuse_busy_port "Kafka's fault-test listener" "$KAFKA_FAULT_PORT"
        start_kafka "$kafka_classpath"
        waiting+=(kafka)
    fi
    if opensearch_answers; then
        log "OpenSearch already answers on $LOOPBACK:$OPENSEARCH_PORT: used as it is"
    else
        refuse_busy_port OpenSearch "$OPENSEARCH_PORT"
        start_opensearch "$opensearch_classpath" "$opensearch_classes"
        waiting+=(opensearch)
    fi
    if hbase_answers; then
        log "HBase Thrift already answers on $LOOPBACK:$HBASE_THRIFT_PORT: used as it is"
    else
        local port
        for port in "$HBASE_THRIFT_PORT" "$HBASE_ZOOKEEPER_PORT" "$HBASE_MASTER_PORT" \
            "$HBASE_REGIONSERVER_PORT"; do
            refuse_busy_port HBase "$port"
        done
        start_hbase "$hbase_classpath"
        waiting+=(hbase)
    fi

    # All launched: wait for them side by side.
    local launched_at=$SECONDS pids=() failed=0
    for engine in "${waiting[@]}"; do
        case $engine in
        kafka) await_engine Kafka kafka_answers "$STATE_DIR/kafka/kafka.log" "$launched_at" & ;;
        opensearch) await_engine OpenSearch opensearch_answers \
            "$STATE_DIR/opensearch/opensearch.log" "$launched_at" & ;;
        hbase) await_engine HBase hbase_answers "$STATE_DIR/hbase/master.log" "$launched_at" & ;;
        esac
        pids+=($!)
    done
    local pid
    for pid in "${pids[@]}"; do
        wait "$pid" || failed=1
    done
    [[ $failed -eq 0 ]] || die "an engine did not start (logs under $STATE_DIR)"
    log "Kafka ready: $LOOPBACK:$KAFKA_PORT"
    log "OpenSearch ready: http://$LOOPBACK:$OPENSEARCH_PORT"
    log "HBase Thrift1 ready: $LOOPBACK:$HBASE_THRIFT_PORT"
}

engines_status() {
    local all_up=0
    if kafka_answers; then
        describe kafka "$KAFKA_MAIN" "up:$KAFKA_PORT"
    else
        describe kafka "$KAFKA_MAIN" "DOWN:$KAFKA_PORT"
        all_up=1
    fi
    if opensearch_answers; then
        describe opensearch "$OPENSEARCH_MAIN" "up:$OPENSEARCH_PORT"
    else
        describe opensearch "$OPENSEARCH_MAIN" "DOWN:$OPENSEARCH_PORT"
        all_up=1
    fi
    if hbase_answers; then
        describe hbase-master "$HBASE_MASTER_MAIN" "up:$HBASE_MASTER_PORT"
        describe hbase-thrift "$HBASE_THRIFT_MAIN" "up:$HBASE_THRIFT_PORT"
    else
        describe hbase-master "$HBASE_MASTER_MAIN" "DOWN:$HBASE_MASTER_PORT"
        describe hbase-thrift "$HBASE_THRIFT_MAIN" "DOWN:$HBASE_THRIFT_PORT"
        all_up=1
    fi
    return "$all_up"
}

engines_down() {
    stop_started hbase-thrift "$HBASE_THRIFT_MAIN"
    stop_started hbase-master "$HBASE_MASTER_MAIN"
    stop_started opensearch "$OPENSEARCH_MAIN"
    stop_started kafka "$KAFKA_MAIN"
}
