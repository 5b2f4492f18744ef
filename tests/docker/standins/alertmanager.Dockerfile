# CI stand-in for prom/alertmanager:v0.25.0 (Debian's alertmanager 0.25 at the image's paths); busybox wget as in the busybox-based official image.
ARG ROOTFS=mlstack-standin/bookworm-minbase:latest
FROM ${ROOTFS}
RUN apt-get update \
 && apt-get install -y --no-install-recommends prometheus-alertmanager busybox \
 && ln -sf /bin/busybox /usr/local/bin/wget \
 && rm -rf /var/lib/apt/lists/* \
 && ln -sf /usr/bin/prometheus-alertmanager /bin/alertmanager \
 && mkdir -p /alertmanager /etc/alertmanager \
 && cp /etc/prometheus/alertmanager.yml /etc/alertmanager/alertmanager.yml \
 && chown -R nobody:nogroup /alertmanager /etc/alertmanager
USER nobody
EXPOSE 9093
VOLUME ["/alertmanager"]
WORKDIR /alertmanager
ENTRYPOINT ["/bin/alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]
