#!/usr/bin/env bash
# A/B of the tuner's overhead per epoch between an older commit and the
# working tree, on the same loop (common.rs), run alternately so that both
# see the same machine:
#
#   benches/tuner_ab/run.sh [BASE] [ROUNDS]     # defaults: 85b5e60, 8
#
# BASE is built from a worktree of its own with old_api.rs (the API up to
# 85b5e60; a later BASE needs new_api.rs), the working tree with new_api.rs,
# each in a target folder under $AB_DIR (default: /tmp/foresight-tuner-ab,
# outside the workspace). Each
# round runs both binaries, 5 repetitions each; prints the medians and the
# ranges of the overhead per epoch (wall and CPU), for no stopping and for
# learning-curve stopping.
set -euo pipefail
cd "$(dirname "$0")/../.."
base=${1:-85b5e60}
rounds=${2:-8}
ab=${AB_DIR:-${TMPDIR:-/tmp}/foresight-tuner-ab}
mkdir -p "$ab"
if [ ! -d "$ab/base" ]; then
  git worktree add --detach "$ab/base" "$base" >/dev/null
fi
build() { # tree api-file
  cp benches/tuner_ab/common.rs "$1/examples/ab_common.rs"
  cp "benches/tuner_ab/$2" "$1/examples/ab.rs"
  (cd "$1" && CARGO_TARGET_DIR="$ab/target-$(basename "$1")" cargo build --release --example ab -q)
}
build "$ab/base" old_api.rs
mkdir -p "$ab/head"
# The working tree's library, with the example copied into a scratch package
# that depends on it (nothing is written into the working tree).
cat > "$ab/head/Cargo.toml" <<TOML
[package]
name = "tuner-ab"
version = "0.0.0"
edition = "2024"
publish = false
[workspace]
[dependencies]
foresight = { path = "$PWD", default-features = false }
[[example]]
name = "ab"
path = "examples/ab.rs"
TOML
mkdir -p "$ab/head/src" "$ab/head/examples"
echo "" > "$ab/head/src/lib.rs"
build "$ab/head" new_api.rs
old="$ab/target-base/release/examples/ab"
new="$ab/target-head/release/examples/ab"
: > "$ab/samples"
for _ in $(seq "$rounds"); do
  REPS=5 "$old" | sed 's/^/old /' >> "$ab/samples"
  REPS=5 "$new" | sed 's/^/new /' >> "$ab/samples"
done
python3 - "$ab/samples" <<'PY'
import statistics, sys
d = {}
for line in open(sys.argv[1]):
    side, policy, _, wall, _, cpu = line.split()
    d.setdefault((policy, side), ([], []))
    d[(policy, side)][0].append(float(wall))
    d[(policy, side)][1].append(float(cpu))
for (policy, side), (wall, cpu) in sorted(d.items()):
    print(f"{policy:4} {side}: n={len(wall)} wall median {statistics.median(wall):.1f} us "
          f"[{min(wall):.1f}, {max(wall):.1f}], cpu median {statistics.median(cpu):.1f} us "
          f"[{min(cpu):.1f}, {max(cpu):.1f}]")
PY
