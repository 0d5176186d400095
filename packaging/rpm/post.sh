# deployhook %post: the state directory, and a config directory only the daemon (and
# root) can read, since hooks.toml may hold or name secrets.
install -d -o deployhook -g deployhook -m 0750 /var/lib/deployhook
# The API's bearer token (the daemon would make it at its first start too): there from
# the start, so that `sudo deployhook jobs` works before the first deploy.
if [ ! -e /var/lib/deployhook/api-token ]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >/var/lib/deployhook/api-token &&
        echo >>/var/lib/deployhook/api-token)
    chown deployhook:deployhook /var/lib/deployhook/api-token
fi
chgrp deployhook /etc/deployhook && chmod 0750 /etc/deployhook
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    # First install: enable as the distribution's preset says.
    if [ "$1" -eq 1 ]; then
        systemctl preset deployhook.service >/dev/null 2>&1 || :
    fi
fi
exit 0
