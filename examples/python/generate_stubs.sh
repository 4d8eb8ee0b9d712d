#!/bin/sh
# Generates the Python code for Sidestream's API from proto/ into
# examples/python/gen (or the directory given as the first argument), with
# protoc and Debian's gRPC plugin (packages protobuf-compiler and
# protobuf-compiler-grpc; scripts/setup installs both).
#
# The generated code imports google.protobuf and grpc at the versions
# Debian 12 ships (python3-protobuf, python3-grpcio): run the subscriber
# with /usr/bin/python3.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
proto_dir="$here/../../proto"
out=${1:-"$here/gen"}
plugin=${GRPC_PYTHON_PLUGIN:-/usr/bin/grpc_python_plugin}
mkdir -p "$out"
cd "$proto_dir"
protoc -I. --python_out="$out" --grpc_out="$out" --plugin=protoc-gen-grpc="$plugin" \
  sidestream/v1/event.proto sidestream/v1/events_service.proto sidestream/v1/admin_service.proto
echo "generate_stubs: Python code for sidestream.v1 in $out"
