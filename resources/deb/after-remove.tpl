#!/bin/sh
# After the vOS .deb is removed (electron-builder fills in the names): undo after-install.
set -e

APP_DIR='/opt/${sanitizedProductName}'
EXECUTABLE='${executable}'

if command -v update-alternatives >/dev/null 2>&1; then
    update-alternatives --remove "$EXECUTABLE" "$APP_DIR/$EXECUTABLE" || true
fi
if [ -L "/usr/bin/$EXECUTABLE" ] && [ ! -e "/usr/bin/$EXECUTABLE" ]; then
    rm -f "/usr/bin/$EXECUTABLE"
fi

PROFILE_TARGET="/etc/apparmor.d/$EXECUTABLE"
if [ -f "$PROFILE_TARGET" ]; then
    if command -v apparmor_parser >/dev/null 2>&1 && [ -d /sys/kernel/security/apparmor ]; then
        apparmor_parser --remove "$PROFILE_TARGET" >/dev/null 2>&1 || true
    fi
    rm -f "$PROFILE_TARGET"
fi
exit 0
