#!/usr/bin/env bash
# Auto-annotates examples/images into a YOLO dataset (Ultralytics layout) in the folder given as
# argument, on a running florence2 server, then lists what it wrote.
#
#   bash examples/annotate/yolo-dataset.sh "$(mktemp -d)/dataset"
#
# The server address comes from $FLORENCE2_ADDRESS, else 127.0.0.1:50051. Run it again on the same
# folder and it resumes: images already annotated there are skipped.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 OUTPUT_DIR" >&2
  exit 2
fi
# The output folder is taken relative to where you are; the CLI and the images relative to the repository.
out=$(realpath -m -- "$1")
cd "$(dirname -- "$0")/../.."

# An 80/20 train/val split, every class <OD> finds (ids in first-seen order).
npm run -s florence2 -- annotate examples/images \
  --server "${FLORENCE2_ADDRESS:-127.0.0.1:50051}" \
  --output "$out" --format yolo --split 0.8 --no-progress

echo
echo "wrote $out:"
# .annotate/ holds what a later run resumes from; the dataset is the rest.
(cd "$out" && find . -path ./.annotate -prune -o -type f -print | sort)
echo
echo "data.yaml:"
cat "$out/data.yaml"
