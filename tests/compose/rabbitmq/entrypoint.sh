#!/bin/sh
# Stand-in for the official rabbitmq image's entrypoint (tests/compose only). What the
# compose file relies on:
#   RABBITMQ_DEFAULT_USER / _PASS / _VHOST  the account and vhost created on first boot
#                                           (conf.d/10-defaults.conf, as the image does);
#   RABBITMQ_ERLANG_COOKIE                  written to $HOME/.erlang.cookie (cluster nodes);
#   logs on stdout; the server runs as the rabbitmq user.
set -eu
if [ "${1:-}" = rabbitmq-server ]; then
    {
        echo "loopback_users.guest = false"
        echo "listeners.tcp.default = 5672"
        echo "management.tcp.port = 15672"
        echo "log.console = true"
        echo "log.file = false"
        echo "default_user = ${RABBITMQ_DEFAULT_USER:-guest}"
        echo "default_pass = ${RABBITMQ_DEFAULT_PASS:-guest}"
        echo "default_vhost = ${RABBITMQ_DEFAULT_VHOST:-/}"
    } >/etc/rabbitmq/conf.d/10-defaults.conf
    chown rabbitmq:rabbitmq /etc/rabbitmq/conf.d/10-defaults.conf
    chmod 600 /etc/rabbitmq/conf.d/10-defaults.conf
    if [ -n "${RABBITMQ_ERLANG_COOKIE:-}" ]; then
        printf '%s' "$RABBITMQ_ERLANG_COOKIE" >"$HOME/.erlang.cookie"
        chmod 600 "$HOME/.erlang.cookie"
    fi
    chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
    shift
    exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups /usr/lib/rabbitmq/bin/rabbitmq-server "$@"
fi
exec "$@"
