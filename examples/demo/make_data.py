#!/usr/bin/env python3
"""Make the demo's synthetic visual question-answering data (standard library only, seconds).

    python3 examples/demo/make_data.py OUT_DIR [--seed 7]

Each "image" is a 2x2 grid of regions; each region holds one object with a shape and a color
(the four shapes of an image are different, and so are its four colors). A region's feature
vector (32 numbers) is E_shape[shape] + E_color[color] + noise, with fixed random embeddings: the
attributes are there, but only as directions in feature space that a model has to learn to read.

Writes, in Granule's dataset format (tools/README.md):

  vocab.json                     the word-level vocabulary, byte-level BPE style ("Ġ" = space)
  pretrain.safetensors           questions that read the object at a place - the backbone's
                                 pre-training (full fine-tuning):
                                   "vqa: what color is in the top left?"     -> a color
                                   "vqa: what shape is in the bottom right?" -> a shape
  vqa_train.safetensors          the downstream task, tuned with VL-PET: find an object by one
  vqa_val.safetensors            attribute and answer the other
  vqa_val.references.jsonl         "vqa: what color is the cube?"            -> a color
                                   "vqa: what shape is the red object?"      -> a shape
  chance.txt                     the accuracy of guessing uniformly among the answers of each
                                 question's kind (6 colors or 6 shapes), over vqa_val, in percent

Pre-training images, VQA training images and VQA validation images are disjoint draws.
"""

import argparse
import json
import os
import random
import struct
import sys

SHAPES = ["cube", "ball", "cone", "ring", "star", "disk"]
COLORS = ["red", "blue", "green", "gray", "pink", "brown"]
POSITIONS = ["top left", "top right", "bottom left", "bottom right"]
# Question kinds: 0 "what color is the cube?", 1 "what shape is the red object?" (find an object by
# one attribute, answer the other: the downstream task), 2 "what color is in the top left?",
# 3 "what shape is in the bottom right?" (read the object at a place: the pre-training task).
VQA_KINDS = (0, 1)
PRETRAIN_KINDS = (2, 3)
FEATURE_DIM = 32
TEXT_LENGTH = 12
ANSWER_LENGTH = 4    # <s> answer </s> + padding
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]
PROMPT_WORDS = ["vqa", ":", "?", "what", "color", "shape", "is", "the", "object", "in",
                "top", "bottom", "left", "right"]


def build_vocab():
    pieces = list(SPECIALS)
    for word in PROMPT_WORDS + SHAPES + COLORS:
        pieces.append(word)
        pieces.append("\u0120" + word)  # "Ġword": the word after a space
    return {piece: i for i, piece in enumerate(dict.fromkeys(pieces))}


def tokenize(vocab, words, length):
    """<s> w1 Ġw2 ... </s>, punctuation attached without a space, padded with <pad>."""
    ids = [vocab["<s>"]]
    for i, word in enumerate(words):
        glued = i == 0 or word in (":", "?")
        ids.append(vocab[word if glued else "\u0120" + word])
    ids.append(vocab["</s>"])
    if len(ids) > length:
        raise ValueError(f"{' '.join(words)!r} needs {len(ids)} tokens, more than {length}")
    return ids + [vocab["<pad>"]] * (length - len(ids)), [1] * len(ids) + [0] * (length - len(ids))


def target(vocab, words, length):
    ids, _ = tokenize(vocab, words, length)
    return [i if i != vocab["<pad>"] else -100 for i in ids]


class Scenes:
    def __init__(self, rng):
        self.rng = rng
        embed = random.Random(1234)  # the embeddings are the "visual encoder": fixed for all splits
        self.shape_vectors = [[embed.gauss(0, 1) for _ in range(FEATURE_DIM)] for _ in SHAPES]
        self.color_vectors = [[embed.gauss(0, 1) for _ in range(FEATURE_DIM)] for _ in COLORS]

    def draw(self):
        shapes = self.rng.sample(range(len(SHAPES)), 4)
        colors = self.rng.sample(range(len(COLORS)), 4)
        features = []
        for s, c in zip(shapes, colors):
            features.extend(a + b + self.rng.gauss(0, 0.3) for a, b in zip(self.shape_vectors[s], self.color_vectors[c]))
        return shapes, colors, features


# Boxes of the 2x2 grid, (x0, y0, x1, y1) normalised, in row-major region order.
BOXES = [0.0, 0.0, 0.5, 0.5, 0.5, 0.0, 1.0, 0.5, 0.0, 0.5, 0.5, 1.0, 0.5, 0.5, 1.0, 1.0]


def question(rng, shapes, colors, kinds):
    """One question of one of `kinds` about the scene: its words, the answer and the number of
    candidate answers."""
    kind = rng.choice(kinds)
    region = rng.randrange(4)
    if kind == 0:
        return ["vqa", ":", "what", "color", "is", "the", SHAPES[shapes[region]], "?"], COLORS[colors[region]], len(COLORS)
    if kind == 1:
        return ["vqa", ":", "what", "shape", "is", "the", COLORS[colors[region]], "object", "?"], SHAPES[shapes[region]], len(SHAPES)
    where = POSITIONS[region].split()
    if kind == 2:
        return ["vqa", ":", "what", "color", "is", "in", "the"] + where + ["?"], COLORS[colors[region]], len(COLORS)
    return ["vqa", ":", "what", "shape", "is", "in", "the"] + where + ["?"], SHAPES[shapes[region]], len(SHAPES)


def write_safetensors(path, tensors):
    """tensors: name -> (dtype 'F32' | 'I64', shape, flat values). Written atomically."""
    header, blobs, offset = {}, [], 0
    for name, (dtype, shape, values) in tensors.items():
        blob = struct.pack(f"<{len(values)}{'f' if dtype == 'F32' else 'q'}", *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    header["__metadata__"] = {"granule_dataset": "1", "source": "examples/demo/make_data.py"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    temporary = path + ".tmp"
    with open(temporary, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def write_split(path, vocab, examples):
    """examples: list of (text words, target words, target length, features)."""
    n = len(examples)
    ids, mask, labels, features = [], [], [], []
    for words, answer, length, feats in examples:
        i, m = tokenize(vocab, words, TEXT_LENGTH)
        ids += i
        mask += m
        labels += target(vocab, answer, length)
        features += feats
    write_safetensors(path, {
        "input_ids": ("I64", [n, TEXT_LENGTH], ids),
        "attention_mask": ("I64", [n, TEXT_LENGTH], mask),
        "vis_feats": ("F32", [n, 1, 2, 2, FEATURE_DIM], features),
        "vis_boxes": ("F32", [n, 4, 4], BOXES * n),
        "labels": ("I64", [n, examples[0][2]], labels),
        "scores": ("F32", [n], [1.0] * n),
    })


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pretrain", type=int, default=6000)
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--val", type=int, default=1000)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    vocab = build_vocab()
    rng = random.Random(args.seed)
    scenes = Scenes(rng)

    chance = 0.0
    splits = (("pretrain", args.pretrain, PRETRAIN_KINDS), ("vqa_train", args.train, VQA_KINDS), ("vqa_val", args.val, VQA_KINDS))
    for split, count, kinds in splits:
        examples, references = [], []
        for k in range(count):
            shapes, colors, feats = scenes.draw()
            words, answer, candidates = question(rng, shapes, colors, kinds)
            examples.append((words, [answer], ANSWER_LENGTH, feats))
            references.append({"id": f"{split}-{k}", "question": " ".join(words[2:]).replace(" ?", "?"), "label": {answer: 1.0}})
            if split == "vqa_val":
                chance += 1.0 / candidates
        write_split(os.path.join(args.out, f"{split}.safetensors"), vocab, examples)
        with open(os.path.join(args.out, f"{split}.references.jsonl"), "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in references)
    with open(os.path.join(args.out, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(args.out, "chance.txt"), "w") as f:
        f.write(f"{100 * chance / args.val:.1f}\n")
    print(f"{args.out}: vocabulary {len(vocab)}, {args.pretrain} pre-training questions, {args.train} + {args.val} VQA questions, "
          f"chance {100 * chance / args.val:.1f}%")


if __name__ == "__main__":
    sys.exit(main())
