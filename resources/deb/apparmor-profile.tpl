# AppArmor profiles of the vOS package (electron-builder fills in the names; installed by the
# package's after-install into /etc/apparmor.d/${executable}). Ubuntu 23.10 and later restrict
# unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns): these let the app
# (Chromium's sandbox) and vos-init (a session's pod) make them, and confine nothing else.
abi <abi/4.0>,
include <tunables/global>

profile "${executable}" "/opt/${sanitizedProductName}/${executable}" flags=(unconfined) {
  userns,

  # Site-specific additions and overrides. See local/README for details.
  include if exists <local/${executable}>
}

profile vos-init "/opt/${sanitizedProductName}/resources/runtime/vos-init" flags=(unconfined) {
  userns,

  include if exists <local/vos-init>
}
