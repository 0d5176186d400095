# deployhook %pre: the daemon's user, before its files are installed.
getent group deployhook >/dev/null || groupadd --system deployhook
getent passwd deployhook >/dev/null || \
    useradd --system --gid deployhook --home-dir /var/lib/deployhook --no-create-home \
        --shell /sbin/nologin --comment "deployhook deploy daemon" deployhook
exit 0
