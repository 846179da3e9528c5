@echo off
rem Start the live trader on Windows: sets up the virtual environment in .venv on first use
rem (and again whenever requirements.txt changed or an install was interrupted), then passes
rem every argument to live\live_trader.py. Example:
rem   start_trader.bat --strategy backtest\strategies\sma_cross.py --dry-run
rem Settings come from .env (copy .env.template). Stop with Ctrl+C or Ctrl+Break, or create
rem the KILL_SWITCH file to halt new entries. Opened by a double-click, the window stays
rem open after an error so it can be read.
setlocal
cd /d "%~dp0"
rem a copy of requirements.txt, written only after pip succeeded: its absence means "install"
set "MARKER=.venv\.installed-requirements"
if not exist ".venv\Scripts\python.exe" goto :setup
fc /b requirements.txt "%MARKER%" >nul 2>&1 || goto :setup
goto :run

:setup
set "PY="
py -3 -c "import sys; sys.exit(sys.version_info < (3, 11))" >nul 2>&1 && set "PY=py -3"
if not defined PY python -c "import sys; sys.exit(sys.version_info < (3, 11))" >nul 2>&1 && set "PY=python"
if not defined PY goto :no_python
echo Setting up the virtual environment in .venv ...
%PY% -m venv .venv || goto :no_venv
".venv\Scripts\python.exe" -m pip install -r requirements.txt || goto :failed
copy /y requirements.txt "%MARKER%" >nul

:run
".venv\Scripts\python.exe" live\live_trader.py %*
set "CODE=%ERRORLEVEL%"
if not "%CODE%"=="0" call :hold
exit /b %CODE%

:no_python
echo error: Python 3.11 or newer not found; install it from python.org and tick "Add python.exe to PATH".
set "CODE=2"
goto :stop

:no_venv
echo error: creating the virtual environment failed; see the messages above.
set "CODE=2"
goto :stop

:failed
echo error: installing requirements.txt failed; see the messages above, then run this again.
set "CODE=1"

:stop
call :hold
exit /b %CODE%

:hold
rem started unattended (deploy\run_unattended.bat): no one is there to press a key
if defined TRADER_UNATTENDED exit /b 0
rem started by a double-click (cmd /c from Explorer): keep the window open to read the error
echo %CMDCMDLINE% | find /i "/c" >nul && pause
exit /b 0
