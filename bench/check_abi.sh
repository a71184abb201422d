#!/bin/bash
# Checks that the ctypes mirror in bench/efla_ctypes.py lays out efla.h's
# structs exactly as the C compiler does (sizes and field offsets).
# usage: bench/check_abi.sh   (from anywhere; needs cc and python3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"${CC:-cc}" -std=c11 -Wall -Wextra -Werror -I"$root/include" "$root/bench/efla_abi.c" -o "$tmp/abi"
"$tmp/abi" > "$tmp/c.txt"
python3 "$root/bench/efla_ctypes.py" layout > "$tmp/py.txt"
if diff -u "$tmp/c.txt" "$tmp/py.txt"; then
  echo "efla_ctypes layout matches efla.h ($(wc -l < "$tmp/c.txt") sizes and offsets)"
else
  echo "efla_ctypes layout differs from efla.h (diff above: C first, ctypes second)" >&2
  exit 1
fi
