#!/usr/bin/env bash
# Installs what building Breakwater needs on Debian (cmake for pingora's zlib-ng, a C
# compiler) when it is missing. Sourced by deploy/run.sh and tests/run.sh.
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust (rustup.rs)"; exit 1; }
