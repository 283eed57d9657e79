#!/usr/bin/env bash
# Double-click to start Danlu on macOS (Terminal runs this file): finds Python 3.11 or 3.12, runs launcher.py.
case "$0" in */*) cd "${0%/*}" || exit 1 ;; esac

is_supported() {  # the interpreter exists and is Python 3.11 or 3.12
  "$1" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' >/dev/null 2>&1
}

for py in python3.12 python3.11 python3 python \
    /Library/Frameworks/Python.framework/Versions/3.12/bin/python3 \
    /Library/Frameworks/Python.framework/Versions/3.11/bin/python3 \
    /opt/homebrew/bin/python3.12 /opt/homebrew/bin/python3.11 /usr/local/bin/python3.12 /usr/local/bin/python3.11; do
  if is_supported "$py"; then
    exec "$py" launcher.py "$@"
  fi
done

echo "Danlu needs Python 3.11 or 3.12. Get it from https://www.python.org/downloads/macos/ and double-click"
echo "Danlu.command again."
echo "丹炉需要 Python 3.11 或 3.12。请从 https://www.python.org/downloads/macos/ 下载安装，然后再双击 Danlu.command。"
exit 1
