# deployhook %postun: after an upgrade, restart on the new binary. RPM has no purge:
# /var/lib/deployhook and the deployhook user are kept on erase (see README.md).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart deployhook.service >/dev/null 2>&1 || :
    fi
fi
exit 0
