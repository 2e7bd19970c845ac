# harbor-ha in a container, for sites that run node agents as containers: the .deb
# (python -m deb.build) on Debian bookworm, with the programs the daemon drives.
#
#   python -m deb.build -o dist
#   docker build --build-arg BASE=debian:bookworm-slim -t harbor-ha:0.1.0 .
#
# BASE names the Debian bookworm base image.  Where no registry is reachable, make one
# from a local root:  debootstrap --variant=minbase bookworm root && \
#   tar -C root -c . | docker import - local/debian:bookworm   (then BASE=local/debian:bookworm)
# The build needs Debian's package mirror (apt-get); with a dockerd without a bridge,
# build with --network host.
#
# It drives the HOST: it maps RBD images (kernel), mounts filesystems the host's
# Docker must see, runs compose against the host's dockerd and reads the VIP on
# the host's interface. So it needs:
#   docker run -d --name harbor-ha --restart always \
#     --network host --pid host --privileged \
#     --security-opt seccomp=unconfined \        # rbd map uses add_key/keyctl (kernel keyring)
#     -v /dev:/dev -v /sys:/sys -v /lib/modules:/lib/modules:ro \
#     -v /run/harbor-ha:/run/harbor-ha \         # FIFO + track files shared with keepalived
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /etc/ceph:/etc/ceph:ro -v /opt/harbor:/opt/harbor:ro \
#     -v /data:/data:rshared \                   # mounts made here must reach the host
#     -v /var/lib/harbor-ha:/var/lib/harbor-ha \ # the history journal
#     --env-file /etc/harbor-ha/harbor-ha.env \
#     harbor-ha:0.1.0
# See README.md, "Running in a container".
ARG BASE=debian:bookworm-slim
FROM ${BASE}

ARG DEB=dist/harbor-ha_0.1.0_amd64.deb
COPY ${DEB} /tmp/harbor-ha.deb
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      /tmp/harbor-ha.deb \
      ceph-common e2fsprogs xfsprogs util-linux iproute2 psmisc docker.io docker-compose \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /tmp/harbor-ha.deb

# Read-only HTTP: /metrics /health /primary /status /liveness /readiness
EXPOSE 9105
HEALTHCHECK --interval=10s --timeout=3s CMD ["/opt/harbor-ha/venv/bin/python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:9105/liveness', timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/sbin/harbor-ha"]
CMD ["run"]
