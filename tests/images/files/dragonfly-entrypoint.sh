#!/usr/bin/env bash
# testbed stand-in for the Dragonfly image: accepts Dragonfly (abseil) style
# flags and execs redis-server in the foreground with the equivalent settings.
set -Eeo pipefail

# `docker run image sh` runs sh, like the official image does for non-flags.
if [ "$#" -gt 0 ] && [ "${1:0:1}" != '-' ]; then
	if [ "$1" = 'dragonfly' ]; then
		shift
	else
		exec "$@"
	fi
fi

note() { printf 'testbed: %s\n' "$*" >&2; }
note 'redis-server stands in for Dragonfly'

port=6379
bind=0.0.0.0
maxmemory=
requirepass=


# Dragonfly accepts 512mb, 2GB, 1GiB ...; redis wants 512mb, 2gb, 1gb (binary).
redis_memory() {
	local v="${1,,}"
	v="${v/kib/kb}"
	v="${v/mib/mb}"
	v="${v/gib/gb}"
	v="${v/tib/tb}"
	printf '%s' "$v"
}

while [ "$#" -gt 0 ]; do
	arg="$1"
	shift
	case "$arg" in
		--*=*)
			name="${arg%%=*}"
			value="${arg#*=}"
			;;
		--port | --bind | --maxmemory | --requirepass | --proactor_threads)
			name="$arg"
			value="${1-}"
			[ "$#" -gt 0 ] && shift
			;;
		--logtostderr | --nologtostderr | --alsologtostderr)
			continue
			;;
		--*)
			name="$arg"
			value=
			# `--flag value` for an unknown flag: swallow the value too.
			if [ "$#" -gt 0 ] && [ "${1:0:1}" != '-' ]; then
				value="$1"
				shift
			fi
			;;
		*)
			note "ignoring argument $arg"
			continue
			;;
	esac
	case "$name" in
		--port) port="$value" ;;
		--bind) bind="$value" ;;
		--maxmemory) maxmemory="$(redis_memory "$value")" ;;
		--requirepass) requirepass="$value" ;;
		--proactor_threads | --logtostderr | --alsologtostderr) ;;
		*) note "ignoring Dragonfly flag ${name}${value:+=$value} (no redis-server equivalent)" ;;
	esac
done

set -- redis-server --port "$port" --bind "$bind" --protected-mode no --save '' --appendonly no
if [ -n "$maxmemory" ] && [ "$maxmemory" != '0' ]; then
	set -- "$@" --maxmemory "$maxmemory"
fi
if [ -n "$requirepass" ]; then
	set -- "$@" --requirepass "$requirepass"
fi
exec "$@"
