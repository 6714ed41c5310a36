#!/usr/bin/env bash
# Docker Compose v2 (`up --wait`) for baseline (b): bookworm ships 1.29, Debian trixie's package is v2.
# Unpacked into benchmarks/.tools without installing anything system-wide.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target="$here/.tools/docker-compose"
[ -x "$target" ] && exit 0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$here/.tools"
echo "deb http://deb.debian.org/debian trixie main" > "$work/trixie.list"
opts=(-o "Dir::Etc::SourceList=$work/trixie.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$work/lists" -o Debug::NoLocking=1)
apt-get "${opts[@]}" update -qq
(cd "$work" && apt-get "${opts[@]}" download docker-compose 2>/dev/null && dpkg -x docker-compose_*.deb x)
cp "$work/x/usr/libexec/docker/cli-plugins/docker-compose" "$target"
"$target" version
