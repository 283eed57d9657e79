@echo off
rem Double-click to start Danlu on Windows: runs launcher.py with Python 3.11 or 3.12 (py -3, else python).
chcp 65001 >nul
cd /d "%~dp0"
set "DANLU_LAUNCHED_BY=Danlu.bat"
set "CHECK=import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))"
set "PY="
py -3 -c "%CHECK%" >nul 2>&1 && set "PY=py -3"
if not defined PY python -c "%CHECK%" >nul 2>&1 && set "PY=python"
if not defined PY (
  echo Danlu needs Python 3.11 or 3.12. Get it from https://www.python.org/downloads/windows/
  echo and tick "Add python.exe to PATH" in the installer, then double-click Danlu.bat again.
  echo 丹炉需要 Python 3.11 或 3.12。请从 https://www.python.org/downloads/windows/ 下载安装，
  echo 安装时勾选 "Add python.exe to PATH"，然后再双击 Danlu.bat。
  pause
  exit /b 1
)
%PY% launcher.py %*
if errorlevel 1 pause
