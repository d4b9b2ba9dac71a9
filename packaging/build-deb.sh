#!/usr/bin/env bash
# Builds station-agent_<version>_<arch>.deb: the agent as wheels, installed offline into its own virtualenv
# at /opt/station-agent by the package's postinst. Run from anywhere; needs PyPI (or a filled wheelhouse).
#
#   packaging/build-deb.sh [--arch amd64|arm64] [--out DIR] [--wheelhouse DIR] [--offline] [--version V]
#
# --arch       the gateway's Debian architecture (default: this machine's); the binary wheels are fetched
#              for it, so an arm64 package builds on an amd64 laptop
# --out        where the .deb goes (default: build/deb)
# --wheelhouse where downloaded wheels are kept between builds (default: build/deb/wheelhouse-<arch>)
# --offline    take the dependencies from the wheelhouse only, without asking PyPI
# --version    the package's Debian version instead of pyproject.toml's (the agent inside keeps its own);
#              the system test builds a second, newer package this way to upgrade to
#
# The dependencies are those pinned, with their hashes, in packaging/requirements.lock (`make lock`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
project=$(dirname "$here")
python=${PYTHON:-"$project/.venv/bin/python"}
arch=$(dpkg --print-architecture)
out="$project/build/deb"
wheelhouse=""
offline=0
deb_version_override=""

while [ $# -gt 0 ]; do
    case "$1" in
        --arch) arch=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --wheelhouse) wheelhouse=$2; shift 2 ;;
        --offline) offline=1; shift ;;
        --version) deb_version_override=$2; shift 2 ;;
        *) echo "build-deb: unknown option $1 (see the top of $0)" >&2; exit 2 ;;
    esac
done

case "$arch" in
    amd64) machine=x86_64 ;;
    arm64) machine=aarch64 ;;
    # armhf: PyPI has no armv7 wheels of some dependencies, and the station cannot compile them offline.
    *) echo "build-deb: no wheels for architecture $arch on PyPI; use amd64 or arm64" >&2; exit 2 ;;
esac

# Debian 12's Python is 3.11 and its glibc 2.36: wheels for exactly that, so the venv built at the station
# needs nothing else. The package depends on python3 3.11 for the same reason.
python_version=3.11
platforms=()
for minor in $(seq 17 36); do platforms+=(--platform "manylinux_2_${minor}_${machine}"); done

version=$("$python" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["version"])' \
    "$project/pyproject.toml")
deb_version=$(printf '%s' "$version" | sed -E 's/([0-9])(a|b|rc|\.dev)/\1~\2/')
deb_version=${deb_version_override:-$deb_version}
wheelhouse=${wheelhouse:-"$out/wheelhouse-$arch"}
stage="$out/stage-$arch"
package="$out/station-agent_${deb_version}_${arch}.deb"

rm -rf "$stage"
mkdir -p "$out" "$wheelhouse" "$stage/DEBIAN"
wheels="$stage/usr/lib/station-agent/wheels"
mkdir -p "$wheels"

echo "build-deb: station-agent $version for $arch"
# setuptools builds in build/lib beside the sources and never deletes there: a module removed from the
# sources would live on in the wheel, so the scratch goes before and after.
rm -rf "$project/build/lib" "$project/build/bdist."*
"$python" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$project"
rm -rf "$project/build/lib" "$project/build/bdist."*
agent_wheel=$(ls "$wheels"/station_agent-"$version"-*.whl)

# Exactly the lock's pins go into the package (packaging/requirements.lock, `make lock`), each wheel checked
# against the lock's sha256 (--require-hashes: a file PyPI or a mirror serves changed is refused, not packed);
# the wheelhouse keeps copies so that the next build downloads only what changed (or nothing, with --offline).
download=("$python" -m pip download --quiet --dest "$wheels" --find-links "$wheelhouse" --only-binary=:all:
    "${platforms[@]}" --python-version "$python_version" --implementation cp
    --abi "cp${python_version/./}" --abi abi3 --abi none)
if [ "$offline" -eq 1 ]; then
    download+=(--no-index)
fi
"${download[@]}" --require-hashes --requirement "$here/requirements.lock"
cp -n "$wheels"/*.whl "$wheelhouse"/
rm -f "$wheelhouse/$(basename "$agent_wheel")"

install -D -m 0644 "$project/systemd/station-agent.service" "$stage/lib/systemd/system/station-agent.service"
# The web page's unit ships disabled: nothing in the maintainer scripts enables or starts it.
install -D -m 0644 "$project/systemd/station-agent-web.service" "$stage/lib/systemd/system/station-agent-web.service"
install -D -m 0644 "$here/station-agent.sysusers" "$stage/usr/lib/sysusers.d/station-agent.conf"
install -D -m 0644 "$here/60-station-agent-leds.rules" "$stage/lib/udev/rules.d/60-station-agent-leds.rules"
install -D -m 0644 "$project/config/station.example.toml" "$stage/etc/station-agent/agent.toml.example"
install -D -m 0644 "$project/README.md" "$stage/usr/share/doc/station-agent/README.md"
install -D -m 0644 "$here/copyright" "$stage/usr/share/doc/station-agent/copyright"
mkdir -p "$stage/usr/bin"
ln -s /opt/station-agent/bin/station-agent "$stage/usr/bin/station-agent"

for script in postinst prerm postrm; do
    install -m 0755 "$here/debian/$script" "$stage/DEBIAN/$script"
done
echo /etc/station-agent/agent.toml.example >"$stage/DEBIAN/conffiles"
size_kib=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$deb_version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size_kib/" \
    "$here/debian/control.in" >"$stage/DEBIAN/control"

dpkg-deb --root-owner-group --build "$stage" "$package" >/dev/null
rm -rf "$stage"
echo "$package"
