#!/usr/bin/env bash
# shellcheck shell=bash
# Start the services that flowkit's integration tests and benches talk to, each only when it is not
# already up: PostgreSQL (127.0.0.1:5432), RabbitMQ (127.0.0.1:5672) and ZooKeeper (127.0.0.1:2181,
# installed from Debian's package when missing, its config and data under .services/zookeeper/), and
# the headless Chromium (/usr/bin/chromium, Debian's package) the console's browser tests drive.
# Every start is idempotent and bounded in time, and every service listens on loopback only.
#
#   scripts/services.sh [start] [postgres|rabbitmq|zookeeper|chromium ...]  start what is missing (all)
#   scripts/services.sh status                                              say what is up
#   source scripts/services.sh; services_start [NAME ...]                   the same, from another script
#
# A service that cannot be started is an error when CI=true (exit status 1); locally it is a warning,
# and the tests that need it skip with a reason (see tests/services.py).

SERVICES_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES_DIR="$SERVICES_ROOT/.services"
ZOOKEEPER_HOME="/usr/share/zookeeper"
ZOOKEEPER_DIR="$SERVICES_DIR/zookeeper"
SERVICES_HOST="127.0.0.1"

_services_say() { echo "services: $*"; }
_services_warn() { echo "services: $*" >&2; }
_services_in_ci() { [[ "${CI:-}" =~ ^([Tt][Rr][Uu][Ee]|1|yes)$ ]]; }

# True when a TCP connection to HOST:PORT succeeds within 2 s.
services_port_open() {
    # shellcheck disable=SC2016  # $1 and $2 expand in the inner shell, on purpose
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# Poll COMMAND... once a second until it succeeds; give up after SECONDS with a message naming WHAT.
services_wait_for() {
    local limit=$1 what=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        if ((SECONDS >= deadline)); then
            _services_warn "$what did not come up within ${limit}s"
            return 1
        fi
        sleep 1
    done
}

# ---- PostgreSQL ---------------------------------------------------------------------------------

_postgres_ready() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h "$SERVICES_HOST" -p 5432
    else
        services_port_open "$SERVICES_HOST" 5432
    fi
}

services_start_postgres() {
    if _postgres_ready; then
        _services_say "PostgreSQL is up on $SERVICES_HOST:5432"
        return 0
    fi
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ ! -d /etc/postgresql ]]; then
        _services_warn "PostgreSQL is down and cannot be started: no pg_ctlcluster or /etc/postgresql"
        return 1
    fi
    local version
    version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)"
    _services_say "starting PostgreSQL cluster $version/main"
    # A non-zero status here may only mean "already starting"; readiness below is what counts.
    timeout 60 pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    services_wait_for 30 "PostgreSQL on $SERVICES_HOST:5432" _postgres_ready || return 1
    _services_say "PostgreSQL is up on $SERVICES_HOST:5432"
}

# ---- RabbitMQ -----------------------------------------------------------------------------------

_rabbitmq_ready() { services_port_open "$SERVICES_HOST" 5672; }

services_start_rabbitmq() {
    if _rabbitmq_ready; then
        _services_say "RabbitMQ is up on $SERVICES_HOST:5672"
        return 0
    fi
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        _services_warn "RabbitMQ is down and cannot be started: rabbitmq-server is not installed"
        return 1
    fi
    mkdir -p "$SERVICES_DIR"
    _services_say "starting RabbitMQ (log: $SERVICES_DIR/rabbitmq-start.log)"
    # -detached daemonizes; a non-zero status may only mean a node is already booting.
    timeout 60 rabbitmq-server -detached >"$SERVICES_DIR/rabbitmq-start.log" 2>&1 || true
    services_wait_for 60 "RabbitMQ on $SERVICES_HOST:5672" _rabbitmq_ready || return 1
    _services_say "RabbitMQ is up on $SERVICES_HOST:5672"
}

# ---- ZooKeeper ----------------------------------------------------------------------------------

# True when ZooKeeper answers the four-letter word `ruok` with `imok`.
_zookeeper_ready() {
    local answer
    # ruok says imok as soon as the port is open; srvr says whether requests are served yet.
    # shellcheck disable=SC2016  # $1 and $2 expand in the inner shell, on purpose
    answer="$(timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"; printf srvr >&3; cat <&3' _ "$SERVICES_HOST" 2181 \
        2>/dev/null)" || true
    [[ "$answer" == *"Zookeeper version"* ]]
}

# apt-get as root, through sudo when this is not root; no prompts (CI has no standard input).
_apt_get() {
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    timeout "$1" "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q "${@:2}" </dev/null
}

# Install Debian's zookeeper package unless zkServer.sh is already there. The package lists are
# refreshed only when they do not offer the package, or when installing from them fails.
services_install_zookeeper() {
    if [[ -x "$ZOOKEEPER_HOME/bin/zkServer.sh" ]]; then
        return 0
    fi
    if ((EUID != 0)) && ! command -v sudo >/dev/null 2>&1; then
        _services_warn "ZooKeeper is not installed, and installing it needs root (or sudo)"
        return 1
    fi
    mkdir -p "$ZOOKEEPER_DIR"
    local log="$ZOOKEEPER_DIR/apt.log" started=$SECONDS updated=0 candidate
    : >"$log"
    candidate="$(apt-cache policy zookeeper 2>/dev/null | awk '/Candidate:/ {print $2}')"
    if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
        _services_say "refreshing the apt package lists (log: $log)"
        _apt_get 300 update >>"$log" 2>&1 || true
        updated=1
    fi
    _services_say "installing ZooKeeper from Debian's packages (log: $log)"
    if ! _apt_get 600 install -y --no-install-recommends zookeeper >>"$log" 2>&1; then
        if ((updated == 0)); then
            _services_say "install failed; refreshing the apt package lists and trying once more"
            _apt_get 300 update >>"$log" 2>&1 || true
            _apt_get 600 install -y --no-install-recommends zookeeper >>"$log" 2>&1 || true
        fi
    fi
    if [[ ! -x "$ZOOKEEPER_HOME/bin/zkServer.sh" ]]; then
        cat "$log" >&2
        _services_warn "installing ZooKeeper failed (apt log above, also in $log)"
        return 1
    fi
    _services_say "ZooKeeper installed in $((SECONDS - started))s"
}

# Install Debian's chromium package unless /usr/bin/chromium is there: the console's browser tests
# (tests/test_console_browser.py) drive it with Playwright; nothing is downloaded by Playwright itself.
services_install_chromium() {
    if [[ -x /usr/bin/chromium ]]; then
        return 0
    fi
    if ((EUID != 0)) && ! command -v sudo >/dev/null 2>&1; then
        _services_warn "Chromium is not installed, and installing it needs root (or sudo)"
        return 1
    fi
    mkdir -p "$SERVICES_DIR"
    local log="$SERVICES_DIR/chromium-apt.log" started=$SECONDS
    : >"$log"
    _services_say "installing Chromium from Debian's packages (log: $log)"
    if ! _apt_get 900 install -y --no-install-recommends chromium >>"$log" 2>&1; then
        _apt_get 300 update >>"$log" 2>&1 || true
        _apt_get 900 install -y --no-install-recommends chromium >>"$log" 2>&1 || true
    fi
    if [[ ! -x /usr/bin/chromium ]]; then
        cat "$log" >&2
        _services_warn "installing Chromium failed (apt log above, also in $log)"
        return 1
    fi
    _services_say "Chromium installed in $((SECONDS - started))s"
}

_zookeeper_write_config() {
    mkdir -p "$ZOOKEEPER_DIR/data" "$ZOOKEEPER_DIR/logs"
    cat >"$ZOOKEEPER_DIR/zoo.cfg" <<CFG
# Generated by scripts/services.sh: a standalone ZooKeeper for flowkit's tests, on loopback only.
# Sessions expire on tick boundaries: a short tick makes failover after a conductor dies
# follow its session timeout closely (2000 ms ticks made it jump by up to 2 s).
tickTime=500
minSessionTimeout=1000
maxSessionTimeout=60000
initLimit=40
syncLimit=20
dataDir=$ZOOKEEPER_DIR/data
clientPort=2181
clientPortAddress=$SERVICES_HOST
# The tests open many short-lived sessions from one address.
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat
CFG
}

services_start_zookeeper() {
    if _zookeeper_ready; then
        _services_say "ZooKeeper is up on $SERVICES_HOST:2181"
        return 0
    fi
    if services_port_open "$SERVICES_HOST" 2181; then
        # Perhaps a ZooKeeper still starting; anything else on the port is not ours to replace.
        services_wait_for 30 "ZooKeeper (port 2181 is open but does not answer ruok)" _zookeeper_ready \
            || return 1
        _services_say "ZooKeeper is up on $SERVICES_HOST:2181"
        return 0
    fi
    services_install_zookeeper || return 1
    _zookeeper_write_config
    local started=$SECONDS
    _services_say "starting ZooKeeper (config: $ZOOKEEPER_DIR/zoo.cfg, log: $ZOOKEEPER_DIR/logs/start.log)"
    # setsid: the server must outlive this script's process group (CI runners and job control
    # signal the whole group). zkServer.sh forks the JVM itself and returns. JMXDISABLE: JMX would
    # open an RMI port on every interface. Debian's zkEnv.sh fixes the JVM's stdout to
    # /var/log/zookeeper/*.out (its server logs nothing else).
    if ! JMXDISABLE=true SERVER_JVMFLAGS="-Xmx512m" timeout 60 setsid -w \
        "$ZOOKEEPER_HOME/bin/zkServer.sh" start "$ZOOKEEPER_DIR/zoo.cfg" \
        >"$ZOOKEEPER_DIR/logs/start.log" 2>&1 </dev/null; then
        cat "$ZOOKEEPER_DIR/logs/start.log" >&2
    fi
    if ! services_wait_for 60 "ZooKeeper on $SERVICES_HOST:2181" _zookeeper_ready; then
        tail -n 40 "$ZOOKEEPER_DIR/logs/start.log" /var/log/zookeeper/*.out >&2 2>/dev/null || true
        return 1
    fi
    _services_say "ZooKeeper is up on $SERVICES_HOST:2181 (started in $((SECONDS - started))s)"
}

# ---- all of them --------------------------------------------------------------------------------

# services_start [postgres|rabbitmq|zookeeper|chromium ...]: start the named services (default: all)
# that are down; "chromium" is the browser the console tests drive (installed, not started).
# Returns 1 only when CI=true and one could not be started.
services_start() {
    local names=("$@") name failed=()
    ((${#names[@]})) || names=(postgres rabbitmq zookeeper chromium)
    for name in "${names[@]}"; do
        case "$name" in
            postgres) services_start_postgres || failed+=(PostgreSQL) ;;
            rabbitmq) services_start_rabbitmq || failed+=(RabbitMQ) ;;
            zookeeper) services_start_zookeeper || failed+=(ZooKeeper) ;;
            chromium) services_install_chromium || failed+=(Chromium) ;;
            *)
                _services_warn "unknown service '$name' (known: postgres rabbitmq zookeeper chromium)"
                return 2
                ;;
        esac
    done
    if ((${#failed[@]})); then
        if _services_in_ci; then
            _services_warn "error: could not start ${failed[*]}; with CI=true every service is required"
            return 1
        fi
        _services_warn "warning: could not start ${failed[*]}; the tests that need it will skip"
    fi
    return 0
}

services_status() {
    local down=0 name probe address
    for name in PostgreSQL:_postgres_ready:5432 RabbitMQ:_rabbitmq_ready:5672 ZooKeeper:_zookeeper_ready:2181; do
        IFS=: read -r name probe address <<<"$name"
        if "$probe"; then
            printf '%-11s up    %s:%s\n' "$name" "$SERVICES_HOST" "$address"
        else
            printf '%-11s down\n' "$name"
            down=1
        fi
    done
    return "$down"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    command="${1:-start}"
    if (($#)); then
        shift
    fi
    case "$command" in
        start) services_start "$@" ;;
        status) services_status ;;
        *)
            echo "usage: $0 [start [postgres|rabbitmq|zookeeper|chromium ...] | status]" >&2
            exit 2
            ;;
    esac
fi
