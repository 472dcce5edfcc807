# Slim inference image: ONNX Runtime + OpenCV + FastAPI, no torch. Build: docker build -t emoscope .
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 EMOSCOPE_CACHE=/opt/emoscope-cache
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install '.[serve]' \
 && python -c "from emoscope.runtime.assets import yunet_model; print('YuNet baked in:', yunet_model())" \
 && useradd --create-home --uid 10001 emoscope \
 && chmod -R a+rX /opt/emoscope-cache
USER emoscope
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"
CMD ["emoscope", "serve", "--host", "0.0.0.0", "--port", "8000"]
