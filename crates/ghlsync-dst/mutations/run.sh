#!/usr/bin/env bash
# The mutation experiments of docs/SIMULATION.md: each patch here puts back
# one bug the sync once had (or could have), and the simulation must find it.
# For each: apply it to a scratch copy of this checkout, build, explore seeds
# from 0 (one at a time) until the first violation, print how many seeds that
# took. The checkout itself is never touched.
#
#   bash crates/ghlsync-dst/mutations/run.sh [ops per seed, default 300] [max seeds, default 200]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
ops="${1:-300}"
max="${2:-200}"
scratch="${TMPDIR:-/tmp}/ghlsync-mutations"
mkdir -p "$scratch"
# One build cache for the copies (never the checkout's): after the first
# mutation only the mutated crates rebuild.
export CARGO_TARGET_DIR="$scratch/target"
for patch in "$here"/*.patch; do
  name="$(basename "$patch" .patch)"
  copy="$scratch/$name"
  rm -rf "$copy"
  git -C "$root" worktree add --detach --force "$copy" HEAD >/dev/null
  git -C "$copy" apply "$patch"
  (cd "$copy" && cargo build --release --quiet -p ghlsync-dst)
  echo "== $name"
  (cd "$copy" && "$CARGO_TARGET_DIR/release/ghlsync-dst" --seeds "$max" --ops "$ops" --jobs 1 --until-failure \
      --failures "$scratch/$name-failures" | grep -E "seeds in|fails|seed [0-9]+:" | head -6) || true
  git -C "$root" worktree remove --force "$copy"
done
