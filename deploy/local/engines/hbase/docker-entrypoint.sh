#!/usr/bin/env bash
# The HBase image's entry point: the same start as deploy/local/engines/engines.sh, in a
# container (the Thrift server binds every interface; everything else stays on loopback
# inside the container).
set -euo pipefail
readonly DATA_DIR=${HBASE_DATA_DIR:-/hbase-data}
readonly CONF_DIR=/opt/hbase/conf
mkdir -p "$CONF_DIR" "$DATA_DIR"
sed "s#@DATA_DIR@#$DATA_DIR#g; s#@THRIFT_PORT@#9090#g" \
    /opt/hbase/conf-template/hbase-site.xml >"$CONF_DIR/hbase-site.xml"
cp /opt/hbase/conf-template/log4j2.properties "$CONF_DIR/"
flags=(
    -XX:+UseG1GC -Djava.net.preferIPv4Stack=true
    -Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true
    --add-modules jdk.unsupported
    --add-opens java.base/java.io=ALL-UNNAMED --add-opens java.base/java.nio=ALL-UNNAMED
    --add-opens java.base/sun.nio.ch=ALL-UNNAMED --add-opens java.base/java.lang=ALL-UNNAMED
    --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens java.base/java.util=ALL-UNNAMED
    --add-opens java.base/java.util.concurrent=ALL-UNNAMED
    --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports java.security.jgss/sun.security.krb5=ALL-UNNAMED
    --add-exports java.base/sun.net.dns=ALL-UNNAMED --add-exports java.base/sun.net.util=ALL-UNNAMED
    "-Dlog4j2.configurationFile=$CONF_DIR/log4j2.properties"
)
classpath="$CONF_DIR:/opt/hbase/lib/*"
java -Xms"${HBASE_HEAP:-1g}" -Xmx"${HBASE_HEAP:-1g}" "${flags[@]}" -cp "$classpath" \
    org.apache.hadoop.hbase.master.HMaster start &
exec java -Xmx256m "${flags[@]}" -cp "$classpath" \
    org.apache.hadoop.hbase.thrift.ThriftServer -b 0.0.0.0 -p 9090 start
