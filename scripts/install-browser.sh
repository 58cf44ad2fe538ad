#!/usr/bin/env bash
# Install the browser the console's tests drive, when it is missing: Debian's chromium and
# chromium-driver, plus a CJK font so that screenshots of the Chinese pages show text, not boxes.
#
#   scripts/install-browser.sh
#
# When everything is present it only looks. As root it uses apt-get; otherwise sudo -n when that
# works; otherwise it says what is missing and fails under CI (CI=true) and warns elsewhere (the
# browser tests then skip with the reason).
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
have fc-list && fc-list :lang=zh | grep -q . || missing+=(fonts-wqy-zenhei)

[ ${#missing[@]} -eq 0 ] && exit 0

in_ci() { [ -n "${CI:-}" ] && [ "${CI}" != "false" ] && [ "${CI}" != "0" ]; }
give_up() {
  echo "browser: $1; as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  if in_ci; then exit 1; fi
  exit 0
}

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif have sudo && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  give_up "missing ${missing[*]} and not root"
fi

echo "browser: installing ${missing[*]}" >&2
started=$SECONDS
apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
"${apt[@]}" update -qq || give_up "apt-get update failed"
"${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || give_up "apt-get install ${missing[*]} failed"
echo "browser: installed ${missing[*]} in $((SECONDS - started)) s" >&2
