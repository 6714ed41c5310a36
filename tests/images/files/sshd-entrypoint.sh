#!/bin/sh
# testbed's SSH test host: a fresh host key per container, the test's public key for `ci`,
# then sshd in the foreground (logging to stderr, so `docker logs` shows refused logins).
set -eu

if [ -n "${SSH_AUTHORIZED_KEY:-}" ]; then
	install -d -m 0700 -o ci -g ci /home/ci/.ssh
	printf '%s\n' "$SSH_AUTHORIZED_KEY" >/home/ci/.ssh/authorized_keys
	chown ci:ci /home/ci/.ssh/authorized_keys
	chmod 0600 /home/ci/.ssh/authorized_keys
fi
ssh-keygen -A >/dev/null
install -d -m 0755 /run/sshd
exec /usr/sbin/sshd -D -e "$@"
