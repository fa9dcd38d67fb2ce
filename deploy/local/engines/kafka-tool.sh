#!/usr/bin/env bash
# Runs one of Apache Kafka's own command-line tools with the test broker's jars (the classpath
# services.sh resolved from Maven Central), as bin/kafka-*.sh of a Kafka distribution would:
#
#   deploy/local/engines/kafka-tool.sh console-consumer --bootstrap-server 127.0.0.1:9092 \
#       --topic T --from-beginning --formatter-property print.headers=true
#   deploy/local/engines/kafka-tool.sh topics --bootstrap-server 127.0.0.1:9092 --list
#
# Tools: console-consumer, console-producer, topics, consumer-groups, get-offsets.
set -euo pipefail

readonly HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

[[ $# -ge 1 ]] || {
    sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
case $1 in
console-consumer) main=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
console-producer) main=org.apache.kafka.tools.ConsoleProducer ;;
topics) main=org.apache.kafka.tools.TopicCommand ;;
consumer-groups) main=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
get-offsets) main=org.apache.kafka.tools.GetOffsetShell ;;
*)
    echo "kafka-tool.sh: unknown tool '$1'" >&2
    exit 2
    ;;
esac
shift
classpath=$("$HERE/../services.sh" classpath kafka)
exec "${OC_ENGINES_JAVA:-java}" -Xmx256m \
    "-Dlog4j2.configurationFile=$HERE/kafka/log4j2.properties" \
    -cp "$classpath" "$main" "$@"
