# CI stand-in for python:3.11-slim-bookworm (Debian's python3.11; same paths and pip behaviour).
ARG ROOTFS=mlstack-standin/bookworm-minbase:latest
FROM ${ROOTFS}
ENV LANG=C.UTF-8 \
    PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHON_VERSION=3.11
COPY host-ca-bundle.crt /usr/local/share/ca-certificates/standin-host-bundle.crt
COPY pip.conf /etc/pip.conf
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3.11 python3.11-venv python3-pip python3-venv \
 && update-ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 # The official image's interpreter is not "externally managed": pip installs system-wide.
 && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED \
 && ln -sf /usr/bin/python3.11 /usr/local/bin/python3.11 \
 && ln -sf /usr/bin/python3.11 /usr/local/bin/python3 \
 && ln -sf /usr/bin/python3.11 /usr/local/bin/python \
 && printf '#!/bin/sh\nexec /usr/bin/python3.11 -m pip "$@"\n' >/usr/local/bin/pip \
 && chmod +x /usr/local/bin/pip && ln -sf pip /usr/local/bin/pip3 && ln -sf pip /usr/local/bin/pip3.11 \
 && python --version && pip --version
CMD ["python3"]
