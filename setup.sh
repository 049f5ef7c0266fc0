#!/bin/sh
# Set up everything minidocker needs on a Debian or Ubuntu machine (as root), then run something.
#
#   ./setup.sh demo    set up, then run a real container
#   ./setup.sh test    set up, then run the whole suite: tests, notebooks, the strict site build
#   ./setup.sh book [PORT]  set up, run the notebooks, build the book and serve it on 127.0.0.1:PORT (8000)
#   ./setup.sh         set up only
#
# Safe to run again: it installs only what is missing, and is quick the second time.
set -eu
cd "$(dirname "$0")"

if [ "$(id -u)" != 0 ]; then
    echo "setup.sh: containers need root: run it as root (sudo ./setup.sh $*)" >&2
    exit 1
fi

# Debian packages: the Python to build the virtual environment with and the tools the engine
# calls; the test suite also talks to the real thing (Docker, Compose v1, skopeo, Debian's registry) to
# check that it speaks the same language. Installed only when missing.
PACKAGES="python3 python3-venv iproute2 ca-certificates nftables"
if [ "${1:-}" = test ]; then
    PACKAGES="$PACKAGES docker-registry skopeo docker.io docker-compose golang-docker-credential-helpers pass gnupg graphviz crun chromium containerd runc"
fi
if [ "${1:-}" = book ]; then
    PACKAGES="$PACKAGES skopeo"  # chapter 09's notebook pushes with a real client
fi
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "setup.sh: installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if ! /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup.sh: minidocker needs Python 3.11 or newer, and this system's python3 is" \
         "$(/usr/bin/python3 -V 2>&1 | cut -d' ' -f2): use Debian 12 or newer, or Ubuntu 24.04 or newer" >&2
    exit 1
fi

# The virtual environment, from Debian's Python; reinstalled only when pyproject.toml changes.
if [ ! -x .venv/bin/python ]; then
    /usr/bin/python3 -m venv .venv
fi
stamp=$(sha256sum pyproject.toml | cut -c1-64)
if [ "$(cat .venv/.installed 2>/dev/null)" != "$stamp" ]; then
    echo "setup.sh: installing minidocker and its Python dependencies into .venv"
    if ! { .venv/bin/python -m pip install -q --upgrade pip &&
           .venv/bin/python -m pip install -q -e '.[dev]' --config-settings editable_mode=compat
         } >.venv/pip.log 2>&1; then
        cat .venv/pip.log >&2
        echo "setup.sh: pip install failed (log above, also in .venv/pip.log)" >&2
        exit 1
    fi
    echo "$stamp" > .venv/.installed
fi

# The busybox root filesystem every container starts from (built once, in /var/cache/minidocker).
ROOTFS=$(.venv/bin/python -m minidocker.rootfs)

REGISTRY=127.0.0.1:5000
REGISTRY_STORAGE=/var/lib/minidocker/registry
registry_answers() {
    .venv/bin/python -c "import urllib.request as u; u.urlopen('http://$REGISTRY/v2/', timeout=1)" 2>/dev/null
}

case "${1:-}" in
    demo)
        # Docker Hub may be unreachable (it is on the machines this book is tested on): run our own
        # registry (chapter 09) on 127.0.0.1:5000 and give it to the daemon as a mirror. Where Docker
        # Hub is reachable the same 'run busybox' works without it. The registry has no users, so
        # it takes no pushes (else any local user could replace the busybox root runs): busybox
        # goes into its storage directory directly, which only root may write.
        mkdir -p /run/minidocker
        .venv/bin/python -m minidocker.registry seed --storage "$REGISTRY_STORAGE" >/dev/null
        if ! registry_answers; then
            setsid .venv/bin/python -m minidocker.registry serve --addr "$REGISTRY" \
                --storage "$REGISTRY_STORAGE" </dev/null >>/run/minidocker/registry.log 2>&1 &
            tries=0
            until registry_answers; do
                tries=$((tries + 1))
                if [ $tries -gt 50 ]; then
                    echo "setup.sh: the registry did not start: see /run/minidocker/registry.log" >&2
                    exit 1
                fi
                sleep 0.2
            done
        fi
        .venv/bin/minidocker daemon start --registry-mirror "http://$REGISTRY" >/dev/null
        .venv/bin/minidocker run --rm busybox echo hello
        exec .venv/bin/minidocker run --rm --hostname minidocker-demo busybox \
            /bin/sh -c 'echo "I am PID $$ on host $(hostname), address $(hostname -i); I can see:"; ps -o pid,args'
        ;;
    test)
        exec .venv/bin/python -m pytest
        ;;
    book)
        # The book as it should be read: the notebooks run here first (as root, as the tests run
        # them: real containers), then both editions are built and served on 127.0.0.1 until Ctrl-C.
        PORT=${2:-8000}
        case "$PORT" in
            "" | *[!0-9]*) echo "setup.sh: book PORT: a port number such as 8000, not '$PORT'" >&2; exit 2 ;;
        esac
        BOOK="$PWD/.build/book"
        if ! .venv/bin/python -m tests.notebooks; then
            echo "setup.sh: the pages of the notebooks that failed show them without outputs" >&2
        fi
        echo "setup.sh: building the book (teachers' and student editions)"
        NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build -q --strict -f site/mkdocs.yml -d "$BOOK"
        NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build -q --strict -f site/mkdocs-student.yml -d "$BOOK/student"
        echo "setup.sh: the book is at http://127.0.0.1:$PORT/ and its student edition at" \
             "http://127.0.0.1:$PORT/student/ (Ctrl-C stops the server)"
        exec .venv/bin/python -m http.server --bind 127.0.0.1 --directory "$BOOK" "$PORT"
        ;;
    "")
        echo "setup.sh: ready. Try: .venv/bin/python -m minidocker.namespaces $ROOTFS -- /bin/sh"
        echo "          or './setup.sh demo', then: .venv/bin/minidocker run -it --rm busybox sh"
        ;;
    *)
        echo "usage: ./setup.sh [demo|test|book [PORT]]" >&2
        exit 2
        ;;
esac
