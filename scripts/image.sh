#!/bin/sh
# make image: builds the container image from Dockerfile with podman, runs it with a
# minimal environment, and checks what an operator relies on: /health over the port, the
# image's own HEALTHCHECK, a non-root user, the lws libuv plugin loaded, CA certificates,
# writable volumes under a read-only root, and a clean drain on SIGTERM (exit 0).
#
# Works without a Docker engine or an image registry (../shared/reference/containers.md):
# podman with runc, cgroupfs and vfs storage; the debian:bookworm-slim base is made once
# with debootstrap from the Debian mirror apt already uses, then imported.
#   VA_IMAGE       the tag to build (default localhost/voice-agent:dev)
#   VA_BASE_IMAGE  the base (default localhost/debian:bookworm-slim; built when missing)
#   VA_IMAGE_PORT  the host port for the probe (--network=host; default: a free one)
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
image=${VA_IMAGE:-localhost/voice-agent:dev}
base=${VA_BASE_IMAGE:-localhost/debian:bookworm-slim}
name=va-image-check-$$
work=$(mktemp -d "${TMPDIR:-/tmp}/va-image.XXXXXX")

"$here/scripts/install-deps.sh" image

# no RLIMIT settings from podman's defaults: this sandbox refuses them
printf '[containers]\ndefault_ulimits = []\n' >"$work/containers.conf"
export CONTAINERS_CONF="$work/containers.conf"
pm() { podman --runtime=runc --cgroup-manager=cgroupfs --storage-driver=vfs "$@"; }

cleanup() {
    pm rm -f "$name" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
fails=0
checks=0
ok() { checks=$((checks + 1)); echo "ok: $*"; }
bad() { fails=$((fails + 1)); echo "FAIL: $*" >&2; }

# The Debian mirror apt uses here (deb822 sources first, then sources.list).
mirror() {
    m=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' |
        grep -m1 '/debian/*$' || true)
    [ -n "$m" ] || m=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' |
        grep -m1 '/debian/*$' || true)
    echo "${m:-http://deb.debian.org/debian}"
}

if ! pm image exists "$base"; then
    echo "image: building the base $base with debootstrap from $(mirror)"
    t0=$(date +%s)
    debootstrap --variant=minbase bookworm "$work/rootfs" "$(mirror)" >"$work/debootstrap.log" 2>&1 ||
        { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
    # slim as debian:bookworm-slim is: no docs, manuals or translations, now or later
    # (dpkg's path-exclude), no apt caches
    rootfs=$work/rootfs
    [ -d "$rootfs/usr/share" ] || { echo "image: debootstrap left no $rootfs/usr/share" >&2; exit 1; }
    printf 'path-exclude /usr/share/%s/*\n' doc man groff info lintian linda locale \
        >"$rootfs/etc/dpkg/dpkg.cfg.d/slim"
    printf 'path-include /usr/share/doc/*/copyright\n' >>"$rootfs/etc/dpkg/dpkg.cfg.d/slim"
    find "$rootfs/usr/share/doc" -mindepth 2 ! -type d ! -name copyright -delete
    for d in man groff info lintian linda locale; do
        rm -rf "${rootfs:?}/usr/share/$d/"*
    done
    rm -rf "${rootfs:?}/var/cache/apt/"*.bin "${rootfs:?}/var/cache/apt/archives/"*.deb \
        "${rootfs:?}/var/lib/apt/lists/"*
    tar -C "$work/rootfs" -c . | pm import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' - "$base" >/dev/null
    echo "image: base built in $(($(date +%s) - t0)) s"
fi

echo "image: building $image"
t0=$(date +%s)
# docker format: the OCI format has no HEALTHCHECK and podman would drop it
pm build --format docker --network=host --build-arg BASE="$base" -t "$image" "$here" \
    >"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log" >&2; exit 1; }
build_s=$(($(date +%s) - t0))
size=$(pm image inspect --format '{{.Size}}' "$image")
echo "image: built in ${build_s} s, $((size / 1000000)) MB ($size bytes)"

# the image's metadata
user=$(pm image inspect --format '{{.Config.User}}' "$image")
case "$user" in "" | root | 0 | 0:*) bad "image user is [$user]" ;; *) ok "image user $user" ;; esac
hc=$(pm image inspect --format '{{json .Config.Healthcheck}}' "$image" 2>/dev/null || true)
case "$hc" in *--healthcheck*) ok "HEALTHCHECK kept" ;; *) bad "no HEALTHCHECK in the image: $hc" ;; esac
pm run --rm --network=none --no-healthcheck --entrypoint /bin/sh "$image" -c \
    'test -s /etc/ssl/certs/ca-certificates.crt && ls /usr/lib/*/libwebsockets-evlib_uv.so' \
    >/dev/null && ok "CA bundle and lws libuv plugin present" || bad "CA bundle or lws plugin missing"

# a free port on the host's loopback (the container shares the host network)
port=${VA_IMAGE_PORT:-}
if [ -z "$port" ]; then
    for p in $(seq 18787 18887); do
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
    done
fi

# the minimal environment: a key and a public URL so /ready can say yes; MCP on an
# ephemeral loopback port so it collides with nothing on the shared network
# --health-interval=disable: no systemd here to time the checks; `healthcheck run` below
pm run -d --name "$name" --network=host --read-only --cap-drop=ALL \
    --security-opt no-new-privileges --health-interval=disable \
    -e HOST=127.0.0.1 -e PORT="$port" -e MCP_PORT=0 -e DRAIN_TIMEOUT_S=5 \
    -e OPENAI_API_KEY=sk-image-check -e PUBLIC_WS_URL=wss://voice.example.com/ws/twilio \
    "$image" >/dev/null
code=""
for _ in $(seq 1 100); do
    code=$(curl -s -o "$work/health" -w '%{http_code}' "http://127.0.0.1:$port/health" || true)
    [ "$code" = 200 ] && break
    sleep 0.1
done
[ "$code" = 200 ] && grep -q '"ok":true' "$work/health" && ok "/health 200 on :$port" ||
    bad "/health answered [$code]"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/ready" || true)
[ "$code" = 200 ] && ok "/ready 200" || bad "/ready answered [$code]"
uid=$(pm exec "$name" id -u)
[ "$uid" != 0 ] && ok "process runs as uid $uid" || bad "process runs as root"
pm exec "$name" sh -c 'for d in spool recordings; do
    touch /var/lib/voice-agent/$d/.w && rm /var/lib/voice-agent/$d/.w || exit 1; done' &&
    ok "spool and recordings volumes writable (read-only root)" || bad "volumes not writable"
out=$(pm exec "$name" voice-agent --healthcheck) && ok "in-container $out" || bad "in-container healthcheck: $out"
pm healthcheck run "$name" >/dev/null 2>&1 && ok "podman healthcheck run: healthy" ||
    bad "podman healthcheck run failed"
logs=$(pm logs "$name" 2>&1)
case "$logs" in *'lws_create_context failed'*) bad "lws could not start (plugin?)" ;; *) ok "lws context up" ;; esac

# SIGTERM (the image's STOPSIGNAL): the drain, exit 0
t0=$(date +%s%N)
pm stop -t 30 "$name" >/dev/null
stop_ms=$((($(date +%s%N) - t0) / 1000000))
rc=$(pm inspect --format '{{.State.ExitCode}}' "$name")
logs=$(pm logs "$name" 2>&1)
[ "$rc" = 0 ] && ok "exit code 0 after SIGTERM (${stop_ms} ms)" || bad "exit code $rc after SIGTERM"
case "$logs" in *'"msg":"draining"'*'"msg":"stopped"'*) ok "drained and stopped cleanly" ;;
*) bad "no drain/stop in the logs" ;; esac
[ "$fails" -eq 0 ] || { echo "$logs" | tail -n 20 >&2; }

echo "image: $image, build ${build_s} s, size $((size / 1000000)) MB"
echo "$checks passed, $fails failed"
[ "$fails" -eq 0 ]
