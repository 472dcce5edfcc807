# Slim inference image: ONNX Runtime + OpenCV + FastAPI in a virtual environment; no torch, no
# matplotlib, no build tools, no pip caches. Build: docker build -t emoscope .
# Without access to Docker Hub, docker/build-image.sh builds the same file on a local Debian base
# (--build-arg BASE=...) with YuNet from the build context (--build-arg YUNET=...).
ARG BASE=python:3.11-slim
FROM ${BASE}
# a YuNet file inside the build context, used instead of the checksummed download
ARG YUNET=""
# a CA bundle for pip behind a TLS-inspecting proxy (mounted into the build by build-image.sh)
ARG PIP_CERT=""
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 EMOSCOPE_CACHE=/opt/emoscope-cache \
    PATH=/opt/venv/bin:$PATH
# the build context is mounted, not copied into a layer of its own: the package (its models are
# tens of MB) is in the image once, in the virtual environment
RUN --mount=type=bind,target=/context \
    if [ -z "$PIP_CERT" ]; then unset PIP_CERT; fi \
 && mkdir /build && cp -r /context/pyproject.toml /context/README.md /context/src /context/docker /build/ \
 && cd /build \
 && python3 -m venv /opt/venv \
 && pip install --no-compile '.[serve]' \
 && pip uninstall -y pip setuptools \
 && find /opt/venv -depth \( -name tests -o -name __pycache__ \) -type d -exec rm -rf {} + \
 && if [ -n "$YUNET" ]; then install -D -m 644 "docker/$YUNET" /opt/emoscope-cache/models/face_detection_yunet_2023mar.onnx; fi \
 && python3 -c "from emoscope.runtime.assets import yunet_model; print('YuNet baked in:', yunet_model())" \
 && useradd --create-home --uid 10001 emoscope \
 && chmod -R a+rX /opt/emoscope-cache \
 && cd / && rm -rf /build
WORKDIR /home/emoscope
USER emoscope
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"
CMD ["emoscope", "serve", "--host", "0.0.0.0", "--port", "8000"]
