# deployhook %pre: the daemon's user, before its files are installed.
getent group deployhook >/dev/null || groupadd --system deployhook
getent passwd deployhook >/dev/null || \
    useradd --system --gid deployhook --home-dir /var/lib/deployhook --no-create-home \
        --shell /sbin/nologin --comment "deployhook deploy daemon" deployhook
# Deploy commands run as a user of their own when the daemon can switch users
# ([server] command_user), so that they cannot read its config and secrets.
getent group deployhook-run >/dev/null || groupadd --system deployhook-run
getent passwd deployhook-run >/dev/null || \
    useradd --system --gid deployhook-run --home-dir /nonexistent --no-create-home \
        --shell /sbin/nologin --comment "deployhook deploy commands" deployhook-run
exit 0
