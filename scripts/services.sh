#!/usr/bin/env bash
# Install the Debian packages the tests or the benchmark run for real, when they are missing.
#
#   scripts/services.sh test    redis-server (Redis online store), postgresql (feedback store, pg_dump for
#                               backups), wrk (load generator), promtool (alert rules), curl (README examples),
#                               strace (the power-loss simulation of the SQLite store),
#                               chromium + chromium-driver + a CJK font (the console's browser tests),
#                               Java 17 (dbt on a local Apache Spark, the cross-engine warehouse test)
#   scripts/services.sh java    Java 17 only (make warehouse-spark)
#   scripts/services.sh bench   wrk
#   scripts/services.sh report  chromium + a CJK font (the monthly report's PDF, printed headless)
#
# Only installs: the tests start their own servers on loopback in temporary directories. Nothing is
# started here, and apt is kept from starting the packages' system services (a policy-rc.d for the
# duration of the install). When everything is present it only looks (well under a second).
# As root it uses apt-get; otherwise sudo -n when that works; otherwise it says what is missing and
# stops with an error under CI (CI=true) and a warning elsewhere (the tests then skip with the reason).
set -euo pipefail

purpose=${1:-test}

have() { command -v "$1" >/dev/null 2>&1; }
# Debian keeps the server binaries out of PATH, under /usr/lib/postgresql/<major>/bin.
have_pg() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && have pg_dump && have pg_restore && have psql; }

missing=()
case "$purpose" in
  test)
    have redis-server || missing+=(redis-server)
    have_pg || missing+=(postgresql postgresql-client)
    have wrk || missing+=(wrk)
    have promtool || missing+=(prometheus)
    have curl || missing+=(curl)
    have strace || missing+=(strace)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
    { have fc-list && fc-list :lang=zh | grep -q .; } || missing+=(fonts-wqy-zenhei)  # Chinese text in screenshots
    have java || missing+=(openjdk-17-jre-headless)
    ;;
  java)
    have java || missing+=(openjdk-17-jre-headless)
    ;;
  bench)
    have wrk || missing+=(wrk)
    ;;
  report)
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    { have fc-list && fc-list :lang=zh | grep -q .; } || missing+=(fonts-wqy-zenhei)
    ;;
  *)
    echo "usage: $0 [test|bench|report|java]" >&2
    exit 2
    ;;
esac

[ ${#missing[@]} -eq 0 ] && exit 0

in_ci() { [ -n "${CI:-}" ] && [ "${CI}" != "false" ] && [ "${CI}" != "0" ]; }
give_up() {  # CI must have every service; elsewhere the tests that need one skip with the reason
  echo "services: $1; as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
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

echo "services: installing ${missing[*]}" >&2
started=$SECONDS
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then  # keep apt from starting system redis / postgres / prometheus services
  printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
  "${as_root[@]}" chmod 755 "$policy"
  own_policy=1
fi
cleanup() { if [ "$own_policy" -eq 1 ]; then "${as_root[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
# Slim Debian images drop /usr/share/man; the JRE's postinst links its man page there and fails without it.
"${as_root[@]}" mkdir -p /usr/share/man/man1
apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
"${apt[@]}" update -qq || give_up "apt-get update failed"
"${apt[@]}" install -y -qq --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null \
  || give_up "apt-get install ${missing[*]} failed"
echo "services: installed ${missing[*]} in $((SECONDS - started)) s" >&2
