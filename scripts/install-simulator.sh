#!/bin/sh
# Icarus Verilog for the cocotb tests, from Debian's packages.
set -e
if command -v iverilog >/dev/null; then exit 0; fi
if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
echo "installing Icarus Verilog (Debian package iverilog)"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq iverilog >/dev/null
