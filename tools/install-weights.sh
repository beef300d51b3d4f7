#!/usr/bin/env bash
# Installs the final weights of a pretrain run as the tiny models' committed defaults: copies
# config.json and checkpoint.bin (the weights only: the final folders hold no optimizer state)
# of each model's final folder into the package's embedded weights folder, and writes
# SHA256SUMS and a README.md saying which commands reproduce them.
#   tools/install-weights.sh [STAGE_DIR [DEST_ROOT]]
#     STAGE_DIR  the pretrain stage's folder (default runs/tiny-pretrain/pretrain)
#     DEST_ROOT  the repository root to install into (default: this repository)
#   MODELS="face clip" tools/install-weights.sh   installs only those models (default: all three)
# Rebuild afterwards: the weights are embedded with //go:embed.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:-runs/tiny-pretrain/pretrain}
dest=${2:-.}
files=(config.json checkpoint.bin)
read -r -a models <<<"${MODELS:-generator face clip}"

die() { echo "install-weights: $*" >&2; exit 1; }

[ -d "$stage" ] || die "$stage does not exist: run cocoflow run experiments/tiny/pretrain.yaml first"
[ -f "$stage/models/_manifest.json" ] ||
  die "$stage/models/_manifest.json is missing: the pretrain run did not finish (rerun it: it resumes)"
run_json=$(dirname "$stage")/_run.json
field() { # field NAME: a top-level string or number of the run manifest, "?" when absent
  [ -f "$run_json" ] && sed -n "s/^  \"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$run_json" | head -n 1 | grep . || echo "?"
}
config=$(field config)
config_sha=$(field config_sha256)
seed=$(field seed)
version=$(sed -n 's/^    "cocoflow": "\([^"]*\)",\{0,1\}$/\1/p' "$run_json" 2>/dev/null | head -n 1)

# Check everything before changing anything.
for model in "${models[@]}"; do
  case $model in generator | face | clip) ;; *) die "unknown model $model (generator, face, clip)" ;; esac
  for f in "${files[@]}"; do
    [ -s "$stage/$model/final/$f" ] || die "$stage/$model/final/$f is missing: was $model trained in this run?"
  done
  [ "$(head -c 8 "$stage/$model/final/checkpoint.bin")" = COCOCKP1 ] ||
    die "$stage/$model/final/checkpoint.bin is not a cocoflow checkpoint"
done

install_model() { # install_model MODEL PACKAGE_DIR WHAT (PACKAGE_DIR under models/)
  local model=$1 dir=$2 what=$3
  local pkg=${dir##*/} src=$stage/$model/final out=$dest/models/$dir/weights
  [ -d "$out" ] || die "$out does not exist: is $dest a cocoflow checkout?"
  for f in "${files[@]}"; do
    install -m 0644 "$src/$f" "$out/.$f.tmp"
    mv -f "$out/.$f.tmp" "$out/$f"
  done
  (cd "$out" && sha256sum "${files[@]}" >SHA256SUMS.tmp && mv -f SHA256SUMS.tmp SHA256SUMS)
  {
    echo "# Default weights of the tiny $what"
    echo
    echo "Embedded into the binary (\`//go:embed weights\`) and loaded by \`$pkg.LoadDefault()\`:"
    echo
    echo "- \`config.json\`: the architecture,"
    echo "- \`checkpoint.bin\`: the trained weights (engine checkpoint, no optimizer state),"
    echo "- \`SHA256SUMS\`: their sha256 (\`sha256sum -c SHA256SUMS\`)."
    echo
    echo "They are the final \`$model\` model of the pretrain stage, reproduced by:"
    echo
    echo "    cocoflow run experiments/tiny/prep.yaml"
    echo "    cocoflow run experiments/tiny/pretrain.yaml"
    echo "    tools/install-weights.sh"
    echo
    echo "Installed $(date -u +%Y-%m-%d) from \`$src\`: config \`$config\` (sha256 $config_sha), seed $seed,"
    echo "cocoflow ${version:-?}; model fingerprint $(cat "$stage/$model/fingerprint" 2>/dev/null || echo '?')."
    if [ -s "$stage/$model/eval.json" ]; then
      echo
      echo "Evaluation on the held-out split (\`$stage/$model/eval.json\`):"
      echo
      echo "    $(cat "$stage/$model/eval.json")"
    fi
  } >"$out/README.md.tmp"
  mv -f "$out/README.md.tmp" "$out/README.md"
  echo "installed $model -> $out ($(du -ch "${files[@]/#/$out/}" | tail -n 1 | cut -f1))"
}

for model in "${models[@]}"; do
  case $model in
  generator) install_model generator family/tiny "generator (latent diffusion)" ;;
  face) install_model face judges/tinyface "identity encoder" ;;
  clip) install_model clip judges/tinyclip "CLIP" ;;
  esac
done
echo "rebuild (go build ./...) to embed the new weights"
