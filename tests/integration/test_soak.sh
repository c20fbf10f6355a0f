#!/usr/bin/env bash
# The soak (tests/soak/soak.sh) in a light version for `make test`: the ASan + UBSan daemon
# for 30 s, warm-up included (about 40 s of its life with the wind-down; about 60 s of wall
# time with PostgreSQL's start), with waves of up to 4 calls, 2 hostile clients at a time,
# the fake Realtime down every 10-15 s and the Edge Function every 8-13 s. Same checks as
# `make soak`: the daemon never dies and exits 0 without a sanitizer report, every started
# call is one row with a terminal status, every event is stored once, nothing is
# dead-lettered, RSS and fds come back. Samples, the summary and the logs go to $SOAK_OUT
# (default: soak/ in ctest's directory).
#
# ASan keeps freed memory in a quarantine (256 MiB by default) to catch use after free:
# over a soak that reads as steady RSS growth. It is cut to 8 MiB here, and the RSS bound
# is 8 MiB more than make soak's (the quarantine fills between the baseline and the end).
set -u
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}:quarantine_size_mb=8"
export SOAK_SECONDS=${SOAK_SECONDS:-30} SOAK_OUT=${SOAK_OUT:-$PWD/soak}
export SOAK_SAMPLE_S=2 SOAK_LEVEL_S=10 SOAK_LONG_S=8 SOAK_WAVE_MAX=4 SOAK_WAVES=3 \
    SOAK_WAVE_GAP_S=3 SOAK_RT_FAULT_S=10 SOAK_FN_FAULT_S=8 SOAK_HOSTILE=2 SOAK_DRAIN_S=40 \
    SOAK_RSS_SLACK_KB=16384 SOAK_MIN_CALLS=10
exec "$(dirname "$0")/../soak/soak.sh"
