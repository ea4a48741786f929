# ---- apt: install what is missing, once per script --------------------------------------------
package_installed() {
  # shellcheck disable=SC2016 # ${Status} is dpkg-query's format, not a shell expansion
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

APT_UPDATED=0
apt_get() {
  # A fresh cloud server may still be running its first-boot upgrades: wait for dpkg's lock.
  apt-get -o DPkg::Lock::Timeout=600 "$@"
}

install_missing_packages() {
  local package
  local -a missing=()
  for package in "$@"; do
    package_installed "$package" || missing+=("$package")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    o4o_step "Already installed: $*"
    return 0
  fi
  if [ "$APT_UPDATED" = 0 ]; then
    apt_get update -qq
    APT_UPDATED=1
  fi
  o4o_step "Installing ${missing[*]}"
  apt_get install -y -qq --no-install-recommends "${missing[@]}"
}
