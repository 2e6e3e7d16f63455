#!/usr/bin/env bash
# The reference llama.cpp server for side-by-side benchmarks: `llama-server`, built from the
# llama.cpp sources that the llama-cpp-python sdist on PyPI vendors (the same llama.cpp Hearth
# runs). Nothing is fetched but that sdist. The build is cached under ~/.cache/hearth/ (about
# 4 minutes on 2 cores the first time); the binary is never committed.
#
#   bench/build_llama_server.sh [VERSION]     # prints the binary's path on its last line
#
# CFLAGS and CXXFLAGS from the environment reach the build (bench/common.py passes the same
# no-AMX flags the Makefile gives the wheel); a build made with other flags is kept apart.
set -euo pipefail

version="${1:-0.3.36}"
flags="${CFLAGS:-}|${CXXFLAGS:-}"
tag="$(printf '%s' "$flags" | sha256sum | cut -c1-12)"
root="${XDG_CACHE_HOME:-$HOME/.cache}/hearth/llama-server/$version-$tag"
source_dir="$root/llama_cpp_python-$version/vendor/llama.cpp"
binary="$source_dir/build/bin/llama-server"

if [ ! -x "$binary" ]; then
  mkdir -p "$root"
  python3 -m pip download --quiet --no-deps --no-binary=:all: --dest "$root" "llama-cpp-python==$version" >&2
  tar -xzf "$root/llama_cpp_python-$version.tar.gz" -C "$root"
  cmake -S "$source_dir" -B "$source_dir/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
  cmake --build "$source_dir/build" --target llama-server --parallel "$(nproc)" >&2
fi
echo "$binary"
