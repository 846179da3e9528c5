@echo off
rem Start the live trader on Windows: creates the virtual environment on first use, then passes
rem every argument to live\live_trader.py. Example:
rem   start_trader.bat --strategy backtest\strategies\sma_cross.py --dry-run
rem Settings come from .env (copy .env.template). Stop with Ctrl+C or Ctrl+Break, or create
rem the KILL_SWITCH file to halt new entries.
setlocal
cd /d "%~dp0"
if not exist ".venv\Scripts\python.exe" (
    echo Creating the virtual environment in .venv ...
    py -3 -m venv .venv || python -m venv .venv || goto :no_python
    ".venv\Scripts\python.exe" -m pip install -r requirements.txt || goto :failed
)
".venv\Scripts\python.exe" live\live_trader.py %*
exit /b %ERRORLEVEL%

:no_python
echo error: Python 3.11+ not found; install it from python.org and tick "Add to PATH".
exit /b 2

:failed
echo error: installing requirements.txt failed; see the messages above.
exit /b 1
