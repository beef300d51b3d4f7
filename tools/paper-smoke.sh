#!/usr/bin/env bash
# make paper-smoke: the paper's three configs (experiments/paper/{prep,train,eval}.yaml), unchanged
# except for the model root, the data root, the captioner's URL and small sizes (--set), run end
# to end on committed signature fixtures through ONNX Runtime and GoMLX, writing Tables 1-2.
# IT PROVES THE WIRING, NOT THE NUMBERS: random-weight models, synthfaces renders in CelebA's
# layout, a fake LLaVA server.
#   tools/paper-smoke.sh            # one machine
#   tools/paper-smoke.sh --shards   # also prep as 3 slices + the final unsliced run, compared
#                                   # byte for byte with the one-machine prep
# PAPER_SMOKE_DIR (default runs/paper-smoke) is wiped and holds everything it makes; the
# report is $PAPER_SMOKE_DIR/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
GO=${GO:-go}
shards=false
case "${1:-}" in
  "") ;;
  --shards) shards=true ;;
  *) echo "usage: tools/paper-smoke.sh [--shards]" >&2; exit 2 ;;
esac
start=$SECONDS
work=${PAPER_SMOKE_DIR:-runs/paper-smoke}
# Wipe only a folder an earlier smoke made (or an empty one), never a folder of other things.
if [ -d "$work" ] && [ ! -e "$work/.paper-smoke" ] && [ -n "$(ls -A "$work")" ]; then
  echo "paper-smoke: $work exists and was not made by paper-smoke; choose another PAPER_SMOKE_DIR" >&2
  exit 2
fi
rm -rf "$work"
mkdir -p "$work"
touch "$work/.paper-smoke"
work=$(cd "$work" && pwd)
say() { echo "paper-smoke: $*" >&2; }

$GO build -o bin/cocoflow ./cmd/cocoflow
$GO build -o bin/paper-smoke ./tools/paper-smoke
cf=$repo/bin/cocoflow

# 1. CelebA's official layout, made from synthfaces renders (4 identities x 3 images).
bin/paper-smoke celeba -out "$work/data/celeba" -identities 4 -images 3
export COCOFLOW_DATA=$work/data

# 2. One model root of symlinks to the committed fixtures: the folder names the paper configs
#    use under ${COCOFLOW_MODELS}.
export COCOFLOW_MODELS=$work/models
mkdir -p "$COCOFLOW_MODELS"
while read -r name fixture; do
  [ -e "$fixture" ] || { say "fixture $fixture is missing from this checkout"; exit 1; }
  ln -s "$repo/$fixture" "$COCOFLOW_MODELS/$name"
done <<'EOF'
sdxl models/family/sdxl/testdata/tiny-sdxl
buffalo_l models/judges/insightface/testdata/buffalo_l
clip-vit-l-14 models/judges/clipvit/testdata/towers
dreamsim models/judges/dreamsim/testdata
grounding-dino models/segment/testdata/grounding-dino
sam2 models/segment/testdata/sam2
EOF
say "model root $COCOFLOW_MODELS: $(ls "$COCOFLOW_MODELS" | tr '\n' ' ')"

# 3. The fake OpenAI-compatible LLaVA server (it says it is a fake), on a free port.
bin/paper-smoke fake-llava -addr 127.0.0.1:0 -url-file "$work/llava.url" 2>"$work/fake-llava.log" &
llava=$!
trap 'kill $llava 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$work/llava.url" ] && break; sleep 0.1; done
[ -s "$work/llava.url" ] || { say "the fake LLaVA server did not start:"; cat "$work/fake-llava.log" >&2; exit 1; }
llava_url=$(cat "$work/llava.url")

# 4. The configs and their small-size overrides.
prep=experiments/paper/prep.yaml
train=experiments/paper/train.yaml
eval=experiments/paper/eval.yaml
prep_set=(--set "caption.base_url=$llava_url" --set ingest.shard_size=4)
# Masks: Grounded SAM 2 on its fixtures (the paper's masks; the default), or prep.yaml's
# landmarks as written (PAPER_SMOKE_MASK=landmarks).
mask=${PAPER_SMOKE_MASK:-grounded-sam2}
case "$mask" in
  landmarks) ;;
  grounded-sam2)
    # Random weights score every box alike: threshold 0 keeps the best one.
    prep_set+=(--set mask.backend=grounded-sam2 --set 'mask.grounding_model=${COCOFLOW_MODELS}/grounding-dino'
      --set 'mask.sam_model=${COCOFLOW_MODELS}/sam2' --set mask.box_threshold=0) ;;
  *) say "PAPER_SMOKE_MASK: want landmarks or grounded-sam2, got $mask"; exit 2 ;;
esac
say "masks: $mask"
train_set=(--set train.steps=2 --set train.batch=1 --set train.width=16 --set train.code_dim=8
  --set train.checkpoint_every=1 --set samples.steps=2 --set 'samples.seeds=[0]' --set 'samples.codes=[1, 2]')
eval_set=()
for s in portraits scenes; do
  # 2 identities of 2 images a subject (CelebA's dataset row covers man and woman, its Male
  # attribute; the other subjects are generated rows only, as in the paper).
  eval_set+=(--set "$s.identities_per_subject=2" --set "$s.samples_per_identity=2"
    --set "$s.steps=2" --set "$s.bootstrap=50" --set "$s.batch=2")
done

# 5. Validate everything before running anything, then prep -> train -> eval.
$cf validate $prep "${prep_set[@]}"
$cf validate $train "${train_set[@]}"
$cf validate $eval "${eval_set[@]}"
$cf -q run $prep --workdir "$work/runs" "${prep_set[@]}"
$cf -q run $train --workdir "$work/runs" "${train_set[@]}"
$cf -q run $eval --workdir "$work/runs" "${eval_set[@]}"

# 6. Sharding: prep as 3 slices (3 machines of a Slurm array or Indexed Job) and the final
#    unsliced run (the stages that are not shard-parallel, and a check of the rest), then every
#    shard compared with the one-machine run's, byte for byte.
if $shards; then
  for i in 0 1 2; do
    $cf -q run $prep --workdir "$work/sliced" --shard-index $i --shard-count 3 "${prep_set[@]}"
  done
  $cf -q run $prep --workdir "$work/sliced" "${prep_set[@]}"
  n=0
  while read -r f; do
    cmp "$work/runs/paper-prep/$f" "$work/sliced/paper-prep/$f"
    n=$((n + 1))
  done < <(cd "$work/runs/paper-prep" && find . -name '*.parquet' | sort)
  extra=$(cd "$work/sliced/paper-prep" && find . -name '*.parquet' | wc -l)
  [ "$n" -gt 0 ] && [ "$n" -eq "$extra" ] || { say "sliced prep has $extra shards, the one-machine prep $n"; exit 1; }
  say "sharding: prep as 3 slices + the final run wrote the same $n shards, byte for byte, as one machine"
fi

# 7. The report: the disclaimer, every model file used with its digest, the tables.
models=(-models "\${COCOFLOW_MODELS}=$COCOFLOW_MODELS")
notes=(-note "configs: $prep, $train, $eval (overrides in each run's _run.json args)" -note "masks: $mask"
  -note "captions: the fake LLaVA server at $llava_url (tools/paper-smoke fake-llava)")
$shards && notes+=(-note "sharding: prep as 3 slices + the final run gave the same $n shards, byte for byte, as one machine")
bin/paper-smoke report -out "$work/report.md" -runs "$work/runs" -tables "$work/runs/paper-eval/report" "${models[@]}" "${notes[@]}"
cat "$work/runs/paper-eval/report/table1.md"
echo
cat "$work/runs/paper-eval/report/table2.md"
echo
echo "paper-smoke: THIS PROVES THE WIRING, NOT THE NUMBERS (random-weight fixtures, synthfaces in"
echo "paper-smoke: CelebA's layout, a fake LLaVA server). Report with every model file and digest:"
echo "paper-smoke: $work/report.md ($((SECONDS - start)) s)"
