# The trader on Linux in a container. By default it trades the built-in simulator in a dry
# run (nothing reaches a broker); with -e MT5_BACKEND=mt5linux (and MT5LINUX_HOST/PORT) it
# reaches an MT5 terminal under Wine outside the container. See SETUP_AND_TESTING.md,
# "Running unattended":
#   docker build -t mt5-trader .
#   docker run -d --name trader --restart on-failure:10 --stop-timeout 60 \
#       -v trader-data:/app/data -v trader-logs:/app/logs mt5-trader
# Arguments after the image name replace the default strategy: `mt5-trader my_strategy.py`.
# Settings: -e KEY=value, or mount a .env read-only at /app/.env (the environment beats it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MT5_BACKEND=sim \
    SIM_SPEED=1
WORKDIR /app
RUN useradd --system --uid 10001 --home-dir /app trader
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY backtest/ backtest/
COPY live/ live/
COPY presets/ presets/
RUN mkdir -p data logs && chown trader:trader data logs
USER trader
VOLUME ["/app/data", "/app/logs"]
# Healthy: a heartbeat at most 3 minutes old (one comes every minute), no shutdown since,
# the terminal connected. Reads AUDIT_DB; exit 0 healthy, 1 not (docs: live/health.py).
HEALTHCHECK --interval=60s --timeout=30s --start-period=120s --retries=3 \
    CMD ["python", "-m", "live.health", "--max-age", "180"]
# SIGTERM stops the trader cleanly (session summary, shutdown event); give it the time
# with --stop-timeout 60 (docker's default is 10 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "live/live_trader.py"]
CMD ["backtest/strategies/sma_cross.py"]
