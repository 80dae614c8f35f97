#!/usr/bin/env bash
# Fails when a C source of ours is not formatted as .clang-format says (clang-format 14).
# Run from the repository root: tests/lint/format.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
mapfile -t files < <(git ls-files 'base/*.[ch]' 'budget/*.[ch]' 'pool/*.[ch]' 'node/*.[ch]' 'raft/*.[ch]' 'admin/*.[ch]' 'tests/unit/*.[ch]' 'tests/integ/*.c' 'tests/fuzz/*.c' 2>/dev/null \
                     || find base budget pool node raft admin tests/unit tests/integ tests/fuzz -name '*.[ch]')
clang-format --dry-run --Werror "${files[@]}"
echo "format: ${#files[@]} files clean"
