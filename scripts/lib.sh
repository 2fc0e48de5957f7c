# Helpers sourced by the scripts: free ports, polling with a deadline, and the Apache Kafka they run.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for NAME SECONDS COMMAND...: polls COMMAND until it succeeds, or fails after the deadline.
wait_for() {
  local name=$1 secs=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$name did not become ready within ${secs}s" >&2
      return 1
    fi
    sleep 0.1
  done
}

# start_kafka DIR [test-kafka options]: builds the launcher (e2e/test-kafka), starts Apache Kafka on
# free ports in the background and waits for it. Sets KAFKA_PID (the launcher: kill it to stop every
# node), KAFKA_BOOTSTRAP and KAFKA_JVM_PIDS; the launcher's log is DIR/kafka.log.
start_kafka() {
  local dir=$1
  shift
  cargo build -q -p test-kafka
  local bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/test-kafka"
  rm -f "$dir/kafka.bootstrap" "$dir/kafka.pids"
  "$bin" --ready-file "$dir/kafka.bootstrap" --pids-file "$dir/kafka.pids" "$@" >"$dir/kafka.log" 2>&1 &
  KAFKA_PID=$!
  local deadline=$((SECONDS + 120))
  until [ -s "$dir/kafka.bootstrap" ]; do
    if ! kill -0 "$KAFKA_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "Apache Kafka did not start; its launcher said:" >&2
      tail -n 30 "$dir/kafka.log" >&2
      return 1
    fi
    sleep 0.1
  done
  KAFKA_BOOTSTRAP=$(cat "$dir/kafka.bootstrap")
  KAFKA_JVM_PIDS=$(tr '\n' ' ' <"$dir/kafka.pids")
}

# stop_kafka: stops what start_kafka started (the launcher kills its nodes) and waits for it.
stop_kafka() {
  if [ -n "${KAFKA_PID:-}" ]; then
    kill "$KAFKA_PID" 2>/dev/null || true
    wait "$KAFKA_PID" 2>/dev/null || true
    KAFKA_PID=""
  fi
}
