# harbor-ha in a container, for sites that run node agents as containers.
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
#     --env-file /etc/harbor-ha/harbor-ha.env \
#     harbor-ha:0.1.0
# See README.md, "Running in a container".
FROM debian:bookworm-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv ceph-common e2fsprogs xfsprogs util-linux iproute2 psmisc \
      docker.io docker-compose ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/harbor-ha
COPY pyproject.toml README.md ./
COPY src ./src
RUN python3 -m venv /opt/harbor-ha/venv \
 && /opt/harbor-ha/venv/bin/pip install --no-cache-dir . \
 && ln -s /opt/harbor-ha/venv/bin/harbor-ha /usr/local/bin/harbor-ha

# Read-only HTTP: /metrics /health /primary /status
EXPOSE 9105
HEALTHCHECK --interval=10s --timeout=3s CMD python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:9105/health', timeout=2)" || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["harbor-ha"]
CMD ["run"]
