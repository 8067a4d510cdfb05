# The image workers and the resurrector run: the workspace installed, your task modules on
# PYTHONPATH (mount or copy them to /app, set RELIER_IMPORTS).
FROM python:3.11-slim
RUN pip install --no-cache-dir uv
WORKDIR /relier
COPY . /relier
RUN uv sync --locked --no-dev --no-editable --all-packages --all-extras
ENV PATH="/relier/.venv/bin:$PATH" PYTHONPATH=/app
RUN useradd --create-home relier
USER relier
