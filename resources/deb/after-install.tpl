#!/bin/sh
# After the vOS .deb is installed (electron-builder fills in the names). Every step that needs
# something optional (update-alternatives, AppArmor, desktop databases) is skipped without it.
set -e

APP_DIR='/opt/${sanitizedProductName}'
EXECUTABLE='${executable}'

# The app's command on PATH.
if command -v update-alternatives >/dev/null 2>&1; then
    if [ -L "/usr/bin/$EXECUTABLE" ] && [ -e "/usr/bin/$EXECUTABLE" ] && [ "$(readlink "/usr/bin/$EXECUTABLE")" != "/etc/alternatives/$EXECUTABLE" ]; then
        rm -f "/usr/bin/$EXECUTABLE"
    fi
    update-alternatives --install "/usr/bin/$EXECUTABLE" "$EXECUTABLE" "$APP_DIR/$EXECUTABLE" 100 || ln -sf "$APP_DIR/$EXECUTABLE" "/usr/bin/$EXECUTABLE"
else
    ln -sf "$APP_DIR/$EXECUTABLE" "/usr/bin/$EXECUTABLE"
fi

# Chromium's sandbox helper is setuid only where user namespaces do not work at all.
if [ -e "$APP_DIR/chrome-sandbox" ]; then
    if [ -L /proc/self/ns/user ] && unshare --user true 2>/dev/null; then
        chmod 0755 "$APP_DIR/chrome-sandbox" || true
    else
        chmod 4755 "$APP_DIR/chrome-sandbox" || true
    fi
fi

if command -v update-mime-database >/dev/null 2>&1; then
    update-mime-database /usr/share/mime || true
fi
if command -v update-desktop-database >/dev/null 2>&1; then
    update-desktop-database /usr/share/applications || true
fi

# The AppArmor profiles (the app's and vos-init's userns rule), where AppArmor runs and its
# parser understands them (abi 4.0: Ubuntu 24.04 and later; older ones need no profile).
PROFILE_SOURCE="$APP_DIR/resources/apparmor-profile"
PROFILE_TARGET="/etc/apparmor.d/$EXECUTABLE"
if command -v apparmor_parser >/dev/null 2>&1 && [ -r "$PROFILE_SOURCE" ]; then
    # Compiled, not loaded, no cache: a profile this parser cannot take is never installed.
    if apparmor_parser --skip-kernel-load --skip-cache "$PROFILE_SOURCE" >/dev/null 2>&1; then
        cp -f "$PROFILE_SOURCE" "$PROFILE_TARGET"
        # Not in a chroot (an image being prepared): load it now.
        if ! { [ -x /usr/bin/ischroot ] && /usr/bin/ischroot; } && [ -d /sys/kernel/security/apparmor ]; then
            apparmor_parser --replace --write-cache --skip-read-cache "$PROFILE_TARGET" || echo "vOS: could not load the AppArmor profile $PROFILE_TARGET (it is loaded at the next boot)"
        fi
    else
        echo "vOS: this AppArmor does not take the bundled profile; skipped (user namespaces need none here)"
    fi
fi

# The agent's systemd user unit (/usr/lib/systemd/user/vos-agent.service): known to running user
# managers at their next reload; each user enables it (systemctl --user enable --now vos-agent).
exit 0
