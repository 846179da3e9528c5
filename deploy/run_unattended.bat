@echo off
rem Task Scheduler's action (deploy\mt5-trader-task.xml): runs start_trader.bat with this
rem script's arguments, and starts it again a minute after it stops on a failure, as the
rem systemd unit does (Task Scheduler's own "restart on failure" only covers a task that
rem could not be launched). Exit code 0 (a clean stop: Ctrl+C, --max-bars) and exit code 2
rem (bad settings, a strategy that does not load, another trader holding the database or
rem the account) end it: starting again cannot help. Example:
rem   deploy\run_unattended.bat --strategy backtest\strategies\sma_cross.py --dry-run
setlocal
rem start_trader.bat then never waits for a key press after an error
set "TRADER_UNATTENDED=1"
cd /d "%~dp0.."

:start
call start_trader.bat %*
set "CODE=%ERRORLEVEL%"
if "%CODE%"=="0" exit /b 0
if "%CODE%"=="2" exit /b 2
echo %DATE% %TIME% the trader stopped with exit code %CODE%; starting it again in 60 s
timeout /t 60 /nobreak >nul 2>&1 || ping -n 61 127.0.0.1 >nul
goto start
