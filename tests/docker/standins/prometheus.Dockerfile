# CI stand-in for prom/prometheus:v2.42.0 (Debian's prometheus 2.42 at the image's paths); busybox wget as in the busybox-based official image.
ARG ROOTFS=mlstack-standin/bookworm-minbase:latest
FROM ${ROOTFS}
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus busybox \
 && ln -sf /bin/busybox /usr/local/bin/wget \
 && rm -rf /var/lib/apt/lists/* \
 && test -x /bin/prometheus && test -x /bin/promtool \
 && mkdir -p /prometheus && chown -R nobody:nogroup /prometheus /etc/prometheus
USER nobody
EXPOSE 9090
VOLUME ["/prometheus"]
WORKDIR /prometheus
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
