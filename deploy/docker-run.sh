#!/usr/bin/env bash
# Serves the repository's shipped models with stock TensorFlow Serving in Docker.
# Run `deploy/docker-run.sh --help` for the options.
set -euo pipefail

readonly DEFAULT_IMAGE="tensorflow/serving:2.21.0"

usage() {
  cat <<EOF
Usage: deploy/docker-run.sh [OPTIONS] [-- MODEL_SERVER_FLAGS...]

Runs TensorFlow Serving (${TF_SERVING_IMAGE:-$DEFAULT_IMAGE}) on the shipped models:
the repository's saved_models/ is mounted read-only at /models and deploy/ at
/config, and the server reads /config/models.config (polled every 60 s, so
edits to deploy/models.config apply without a restart), /config/batching.config
and /config/monitoring.config. Works from any directory.

  gRPC  localhost:8500   e.g. seq2seq translate --server grpc://localhost:8500/translate-en-fr
  REST  localhost:8501   e.g. curl localhost:8501/v1/models/translate-en-fr

Options:
  --image IMAGE       TF Serving image (default: \$TF_SERVING_IMAGE, else $DEFAULT_IMAGE)
  --grpc-port PORT    host port for gRPC (default: 8500)
  --rest-port PORT    host port for REST and metrics (default: 8501)
  --name NAME         container name (default: seq2seq-serving)
  --cpus N            CPUs the container may use (docker run --cpus); default: all
  --detach            run in the background (docker logs -f NAME; docker stop NAME)
  --dry-run           print the docker command instead of running it
  -h, --help          show this help

Flags after -- go to tensorflow_model_server, after the ones this script sets,
e.g. -- --tensorflow_intra_op_parallelism=2
EOF
}

image="${TF_SERVING_IMAGE:-$DEFAULT_IMAGE}"
grpc_port=8500
rest_port=8501
name="seq2seq-serving"
cpus=""
detach=false
dry_run=false
extra=()

need_value() {
  if [[ $# -lt 2 || -z "$2" ]]; then
    echo "docker-run.sh: $1 needs a value (see --help)" >&2
    exit 2
  fi
}

while [[ $# -gt 0 ]]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --image) need_value "$@"; image="$2"; shift 2 ;;
    --grpc-port) need_value "$@"; grpc_port="$2"; shift 2 ;;
    --rest-port) need_value "$@"; rest_port="$2"; shift 2 ;;
    --name) need_value "$@"; name="$2"; shift 2 ;;
    --cpus) need_value "$@"; cpus="$2"; shift 2 ;;
    --detach) detach=true; shift ;;
    --dry-run) dry_run=true; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "docker-run.sh: unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

for port in "$grpc_port" "$rest_port"; do
  if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    echo "docker-run.sh: not a port: $port" >&2
    exit 2
  fi
done

deploy_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
repo_dir="$(dirname "$deploy_dir")"
for file in models.config batching.config monitoring.config; do
  if [[ ! -f "$deploy_dir/$file" ]]; then
    echo "docker-run.sh: missing $deploy_dir/$file" >&2
    exit 1
  fi
done
if [[ ! -d "$repo_dir/saved_models" ]]; then
  echo "docker-run.sh: no shipped models: $repo_dir/saved_models is missing" >&2
  exit 1
fi

command=(docker run --rm --init --name "$name"
  -p "$grpc_port:8500" -p "$rest_port:8501"
  --mount "type=bind,source=$repo_dir/saved_models,target=/models,readonly"
  --mount "type=bind,source=$deploy_dir,target=/config,readonly")
if [[ -n "$cpus" ]]; then
  command+=(--cpus "$cpus")
fi
if $detach; then
  command+=(--detach)
fi
# The image's own entrypoint serves the single model named by MODEL_NAME; call the
# server directly with the config files instead (as deploy/Dockerfile does).
command+=(--entrypoint tensorflow_model_server "$image"
  --port=8500
  --rest_api_port=8501
  --model_config_file=/config/models.config
  --model_config_file_poll_wait_seconds=60
  --allow_version_labels_for_unavailable_models=true
  --enable_batching=true
  --batching_parameters_file=/config/batching.config
  --monitoring_config_file=/config/monitoring.config)
# (The ${a[@]+...} form: macOS's bash 3.2 calls an empty array unbound under set -u.)
command+=(${extra[@]+"${extra[@]}"})

if $dry_run; then
  printf '%q ' "${command[@]}"
  printf '\n'
  exit 0
fi
if ! command -v docker >/dev/null 2>&1; then
  echo "docker-run.sh: docker is not installed (https://docs.docker.com/engine/install/)" >&2
  exit 1
fi
exec "${command[@]}"
