#!/usr/bin/env bash
# tests/process/compile_fail.sh SRC "CXX..." - par(cojob::require_remotable, tasks) refuses, at
# compile time and with a message naming the reason, every kind of task a worker process cannot
# run; the control case, with tasks that can travel, compiles.
set -u
src=$1
read -r -a cxx <<<"$2"
file=$src/tests/process/not_remotable.cpp
flags=(-std=c++20 -fsyntax-only -I"$src/include" -DBOOST_ASIO_NO_DEPRECATED -DBOOST_ASIO_DISABLE_BOOST_COROUTINE)
status=0
expect() {  # case, text the error must contain
  local out
  if out=$("${cxx[@]}" "${flags[@]}" -DCASE="$1" "$file" 2>&1); then
    echo "FAIL: case $1 compiled, expected an error containing: $2"; status=1
  elif ! grep -qF "$2" <<<"$out"; then
    echo "FAIL: case $1 failed without the message '$2':"; echo "$out" | grep -m5 error; status=1
  else
    echo "ok: case $1 refused: $2"
  fi
}
if out=$("${cxx[@]}" "${flags[@]}" -DCASE=0 "$file" 2>&1); then
  echo "ok: case 0 (remotable tasks) compiles"
else
  echo "FAIL: the control case does not compile:"; echo "$out" | head -20; status=1
fi
expect 1 "its callable has state that cannot be sent"
expect 2 "cereal cannot serialize one of its argument"
expect 3 "cereal cannot serialize one of its argument"
expect 4 "cereal cannot serialize its result type"
exit $status
