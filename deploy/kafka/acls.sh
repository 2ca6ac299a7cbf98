#!/usr/bin/env bash
# Broker ACLs that make Driftloop's topic contract hold in production (docs/ingest.md, "Public and
# internal topics"): apps may only write the public *-raw topics; every internal topic is written only by
# the Driftloop service that owns it, so whatever a consumer reads there was validated, keyed and
# partitioned by Driftloop.
#
# Documentation as code. It only has an effect on a broker with an authorizer configured, e.g. in KRaft:
#   authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
#   allow.everyone.if.no.acl.found=false
#   super.users=User:admin            (the principal running this script and `driftloop infra up`)
# and listeners that authenticate clients (SASL or mTLS), so each service connects as its own principal.
# The local single-node broker of `driftloop infra up` has no authorizer: there this script is not needed.
#
# Topics are created up front by the admin (`driftloop infra up` or your platform), never by services.
# tests/unit/test_kafka_acls.py checks that every topic of shared/topics.py has its rules here;
# tests/integration/test_kafka_acls_enforced.py applies them to a broker with StandardAuthorizer and SASL
# users and checks that an app can write predictions-raw but not predictions.
#
# Usage: BOOTSTRAP=broker:9092 ADMIN_CONFIG=admin.properties PREFIX="" deploy/kafka/acls.sh
#        DRY_RUN=1 deploy/kafka/acls.sh      # print the commands instead of running them
set -euo pipefail

BOOTSTRAP=${BOOTSTRAP:-127.0.0.1:9092}
ADMIN_CONFIG=${ADMIN_CONFIG:-}          # client properties of the admin principal (SASL/TLS settings)
PREFIX=${PREFIX:-}                      # DRIFTLOOP_TOPIC_PREFIX of the deployment
KAFKA_ACLS=${KAFKA_ACLS:-kafka-acls.sh} # from the Kafka distribution's bin/
DRY_RUN=${DRY_RUN:-0}

acl() {
  local cmd=("$KAFKA_ACLS" --bootstrap-server "$BOOTSTRAP")
  if [ -n "$ADMIN_CONFIG" ]; then cmd+=(--command-config "$ADMIN_CONFIG"); fi
  cmd+=(--add "$@")
  if [ "$DRY_RUN" = 1 ]; then printf '%q ' "${cmd[@]}"; echo; else "${cmd[@]}"; fi
}

# Writing a topic also needs Describe (metadata); aiokafka's idempotent producers need nothing more on
# Kafka >= 3.0 (IdempotentWrite is implied by Write).
topics() { for t in "$@"; do printf -- '--topic\n%s\n' "$t"; done; }
writes() { local who=$1; shift; mapfile -t ts < <(topics "$@"); acl --allow-principal "$who" --operation Write --operation Describe "${ts[@]}"; }
reads()  { local who=$1; shift; mapfile -t ts < <(topics "$@"); acl --allow-principal "$who" --operation Read --operation Describe "${ts[@]}"; }
group()  { acl --allow-principal "$1" --operation Read --operation Describe --group "$2"; }

# --- public topics: any Kafka client, any partitioner, anything goes --------------------------------------
# Production apps (SDK, kcat, Java, Go ...) and the model servers, which publish their own predictions
# back into the loop through the SDK. They can write nothing else.
writes User:apps    "${PREFIX}predictions-raw" "${PREFIX}labels-raw"
writes User:serving "${PREFIX}predictions-raw" "${PREFIX}labels-raw"

# --- ingest: the stream validator and the HTTP ingest -----------------------------------------------------
# Reads the public topics, re-keys each valid event by model name with Driftloop's partitioner and writes
# it to the internal topics; rejects go to dead-letter with the reason and the original bytes.
reads  User:ingest "${PREFIX}predictions-raw" "${PREFIX}labels-raw"
writes User:ingest "${PREFIX}predictions" "${PREFIX}labels" "${PREFIX}dead-letter" "${PREFIX}data-quality"
group  User:ingest "${PREFIX}driftloop-ingest-validator"   # DRIFTLOOP_INGEST_VALIDATOR_GROUP

# --- monitor ---------------------------------------------------------------------------------------------
reads  User:monitor "${PREFIX}predictions" "${PREFIX}labels" "${PREFIX}data-quality" \
                    "${PREFIX}dead-letter" "${PREFIX}model-events" "${PREFIX}drift-events"
writes User:monitor "${PREFIX}drift-events" "${PREFIX}dead-letter"
group  User:monitor "${PREFIX}driftloop-monitor"
# the monitor asks to create its topics at start; allow the request (it creates nothing that exists)
mapfile -t ts < <(topics "${PREFIX}predictions" "${PREFIX}labels" "${PREFIX}data-quality" \
                         "${PREFIX}dead-letter" "${PREFIX}model-events" "${PREFIX}drift-events")
acl --allow-principal User:monitor --operation Create "${ts[@]}"

# --- trainer ---------------------------------------------------------------------------------------------
reads  User:trainer "${PREFIX}drift-events" "${PREFIX}training-runs"
writes User:trainer "${PREFIX}training-runs" "${PREFIX}dead-letter"
group  User:trainer "${PREFIX}driftloop-trainer"           # DRIFTLOOP_TRAINER_GROUP

# --- registry: the outbox relay announces every change --------------------------------------------------
writes User:registry "${PREFIX}model-events"

# --- model servers: hot-swap on model-events (no consumer group: every replica reads every partition) ---
reads  User:serving "${PREFIX}model-events"

# --- scaling advisor: reads the monitor group's offsets and the topics' end offsets, publishes its advice --
mapfile -t ts < <(topics "${PREFIX}predictions" "${PREFIX}labels")
acl --allow-principal User:advisor --operation Describe "${ts[@]}"
writes User:advisor "${PREFIX}scale-advice"
acl --allow-principal User:advisor --operation Describe --group "${PREFIX}driftloop-monitor"

# --- operators: `driftloop train` asks for a run and follows its outcome ----------------------------------
writes User:operator "${PREFIX}training-runs"
reads  User:operator "${PREFIX}training-runs" "${PREFIX}drift-events" "${PREFIX}model-events" "${PREFIX}dead-letter" \
                     "${PREFIX}scale-advice"
acl --allow-principal User:operator --operation Read --operation Describe \
    --resource-pattern-type prefixed --group "driftloop-train-cli-"
