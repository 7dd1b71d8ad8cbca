#!/usr/bin/env python3
"""Convert VL-Adapter / VL-PET annotations and CLIP grid features to a Granule dataset.

Writes OUT.safetensors, the `--data` format of a compiled program's `train` (Runtime/README.md,
"Datasets"): one tensor per batch input with a leading axis of N examples, and
OUT.references.jsonl, one JSON object per example (ids, raw answers, captions) for scoring.

    python tools/convert_vl_adapter_dataset.py karpathy_train.json --task vqa \\
        --features clip_features/data_clip_RN101_att --tokenizer bart-base-tokenizer \\
        --spec examples/specs/bart-base-vlpet-large.json -o data/vqa.safetensors
    python tools/convert_vl_adapter_dataset.py --self-test

Tasks (spec vlpet.md 3.4, the released `*_clip_data.py` datasets):
  vqa      {"question_id", "img_id", "sent", "label": {answer: score}, "answers": [{"answer"}, ...]}
           prompt "vqa: "; target: the best-scoring answer (ties: the first), "" if none scores;
           scores = that answer's score (score-weighted loss)
  gqa      same fields; prompt "gpa: " (the released code's typo); scores = 1 (unweighted loss)
  nlvr     {"uid" | "identifier", "sent", "img0", "img1", "label": 0 | 1}; prompt "nlvr: ";
           target "true" / "false"; two images
  caption  [{"img_id", "sentences" | "targets": [caption, ...]}] or Karpathy's dataset_coco.json
           (with --karpathy-split); prompt "caption: "; train: one example per (image, caption);
           eval (--eval): one example per image, all captions as references, the first as labels

Needs numpy, safetensors, transformers (the tokenizer, loaded offline from a local directory) and,
for HDF5 features, h5py. CI does not run this script.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

FORMAT_VERSION = "1"
TASKS = ("vqa", "gqa", "nlvr", "caption")
DEFAULT_PROMPTS = {"vqa": "vqa: ", "gqa": "gpa: ", "nlvr": "nlvr: ", "caption": "caption: "}
TASK_IMAGES = {"vqa": 1, "gqa": 1, "nlvr": 2, "caption": 1}
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "val", "test": "test"}


class InputError(Exception):
    """A problem with the input: printed as one `error: ...` line, exit 1, nothing written."""


# ----------------------------------------------------------------------------------------------
# Geometry: the static shapes of one example (from a model spec and/or flags)


@dataclass
class Geometry:
    family: str  # "bart" | "t5"
    text_length: int
    target_length: int
    feature_dim: int
    grid: tuple[int, int]
    pool: tuple[int, int]
    images: int
    vocab_rows: int | None = None  # the model's token rows (resize_vocab), to range-check ids
    prompts: dict[str, str] = field(default_factory=dict)  # from the spec's "tasks"

    @property
    def tokens_per_image(self) -> int:
        # ModelSpec.VisualInput.tokensPerImage: a stride-1 max-pool (7×7 with [2, 2] → 6×6 = 36).
        return (self.grid[0] - self.pool[0] + 1) * (self.grid[1] - self.pool[1] + 1)

    @property
    def tokens(self) -> int:
        return self.tokens_per_image * self.images


def _spec_field(spec: dict, path: str, kind, spec_path: str):
    value = spec
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    if kind == "positive":
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InputError(f"{spec_path}: field '{path}': expected a positive integer")
    elif kind == "pair":
        if (not isinstance(value, list) or len(value) != 2
                or any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in value)):
            raise InputError(f"{spec_path}: field '{path}': expected two positive integers")
        value = (value[0], value[1])
    return value


def load_spec(spec_path: str) -> dict:
    """The parts of a Granule model spec the converter uses, as keyword defaults for Geometry."""
    try:
        with open(spec_path, encoding="utf-8") as f:
            spec = json.load(f)
    except OSError as e:
        raise InputError(f"{spec_path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{spec_path}: invalid JSON: {e}") from None
    if not isinstance(spec, dict):
        raise InputError(f"{spec_path}: expected a JSON object")
    out: dict = {}
    backbone = spec.get("backbone")
    if not isinstance(backbone, str):
        raise InputError(f"{spec_path}: field 'backbone': expected a string")
    config_path = backbone if os.path.isabs(backbone) else os.path.join(os.path.dirname(os.path.abspath(spec_path)), backbone)
    try:
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    except OSError as e:
        raise InputError(f"{spec_path}: field 'backbone': {config_path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{config_path}: invalid JSON: {e}") from None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    out["family"] = family_of(model_type, config_path)
    rows = spec.get("resize_vocab", config.get("vocab_size"))
    if isinstance(rows, int) and not isinstance(rows, bool) and rows > 0:
        out["vocab_rows"] = rows
    for key, path, kind in (("text_length", "batch.text_length", "positive"),
                            ("target_length", "batch.target_length", "positive"),
                            ("feature_dim", "visual.feature_dim", "positive"),
                            ("grid", "visual.grid", "pair"),
                            ("pool", "visual.pool_window", "pair"),
                            ("images", "visual.images", "positive")):
        value = _spec_field(spec, path, kind, spec_path)
        if value is not None:
            out[key] = value
    if "visual" in spec and "pool" not in out:
        out["pool"] = (1, 1)
    if "visual" in spec and "images" not in out:
        out["images"] = 1
    prompts = {}
    for task in spec.get("tasks") or []:
        if isinstance(task, dict) and isinstance(task.get("name"), str) and isinstance(task.get("prompt", ""), str):
            prompts[task["name"]] = task.get("prompt", "")
    out["prompts"] = prompts
    return out


def family_of(model_type, where: str) -> str:
    if isinstance(model_type, str):
        if model_type.startswith("bart"):
            return "bart"
        if model_type in ("t5", "mt5", "umt5"):
            return "t5"
    raise InputError(f"{where}: field 'model_type': expected a BART or T5 config, got {json.dumps(model_type)}")


def resolve_geometry(args, task: str) -> Geometry:
    values = load_spec(args.spec) if args.spec else {"prompts": {}}
    for key, flag in (("family", args.family), ("text_length", args.text_length), ("target_length", args.target_length),
                      ("feature_dim", args.feature_dim), ("grid", tuple(args.grid) if args.grid else None),
                      ("pool", tuple(args.pool) if args.pool else None), ("images", args.images)):
        if flag is not None:
            values[key] = flag
    values.setdefault("pool", (1, 1))
    values.setdefault("images", TASK_IMAGES[task])
    missing = [flag for key, flag in (("family", "--family"), ("text_length", "--text-length"),
                                      ("target_length", "--target-length"), ("feature_dim", "--feature-dim"),
                                      ("grid", "--grid")) if key not in values]
    if missing:
        if args.spec:
            raise InputError(f"the spec {args.spec} does not give {', '.join(m[2:] for m in missing)}: pass {', '.join(missing)}")
        raise InputError(f"give --spec, or {', '.join(missing)}")
    geometry = Geometry(**values)
    for name, value in (("text length", geometry.text_length), ("target length", geometry.target_length),
                        ("feature dim", geometry.feature_dim), ("images", geometry.images), *(
                            (f"grid[{i}]", v) for i, v in enumerate(geometry.grid)), *(
                            (f"pool[{i}]", v) for i, v in enumerate(geometry.pool))):
        if value <= 0:
            raise InputError(f"{name} must be positive, got {value}")
    if geometry.pool[0] > geometry.grid[0] or geometry.pool[1] > geometry.grid[1]:
        raise InputError(f"pool window {list(geometry.pool)} is larger than the grid {list(geometry.grid)}")
    if geometry.images != TASK_IMAGES[task]:
        src = f"the spec {args.spec}" if args.spec and args.images is None else "--images"
        raise InputError(f"{task} has {TASK_IMAGES[task]} image(s) per example; {src} says {geometry.images}")
    return geometry


# ----------------------------------------------------------------------------------------------
# Annotations → examples (text without prompt, target string, score, image ids, reference)


@dataclass
class Example:
    id: object
    text: str
    target: str
    score: float
    images: list[str]
    reference: dict


class Datum:
    """Typed field access with `FILE: datum I: field 'x': ...` errors."""

    def __init__(self, source: str, index: int, value, noun: str = "datum"):
        self.where = f"{source}: {noun} {index}"
        if not isinstance(value, dict):
            raise InputError(f"{self.where}: expected a JSON object, got {_kind(value)}")
        self.value = value

    def fail(self, name: str, message: str) -> InputError:
        return InputError(f"{self.where}: field '{name}': {message}")

    def has(self, name: str) -> bool:
        return name in self.value

    def get(self, name: str):
        if name not in self.value:
            raise self.fail(name, "missing")
        return self.value[name]

    def string(self, name: str) -> str:
        value = self.get(name)
        if not isinstance(value, str):
            raise self.fail(name, f"expected a string, got {_kind(value)}")
        return value

    def identifier(self, name: str):
        value = self.get(name)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise self.fail(name, f"expected a string or an integer, got {_kind(value)}")
        return value

    def first_string(self, *names: str) -> str:
        for name in names:
            if name in self.value:
                return self.string(name)
        raise self.fail(names[0], "missing")


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _score_label(datum: Datum) -> dict:
    if not datum.has("label"):
        return {}
    label = datum.get("label")
    if not isinstance(label, dict):
        raise datum.fail("label", f"expected an object of answer scores, got {_kind(label)}")
    for answer, score in label.items():
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score) or score < 0:
            raise datum.fail("label", f"answer {json.dumps(answer)}: expected a non-negative number, got {json.dumps(score)}")
    return label


def best_answer(label: dict) -> tuple[str, float]:
    """The highest-scoring answer (ties: the first in the dict); ("", 0) when nothing scores."""
    best, best_score = "", 0.0
    for answer, score in label.items():
        if score > best_score:
            best, best_score = answer, float(score)
    return best, best_score


def _raw_answers(datum: Datum) -> list[str] | None:
    if not datum.has("answers"):
        return None
    answers = datum.get("answers")
    if not isinstance(answers, list):
        raise datum.fail("answers", f"expected an array, got {_kind(answers)}")
    out = []
    for i, a in enumerate(answers):
        if isinstance(a, dict) and isinstance(a.get("answer"), str):
            out.append(a["answer"])
        elif isinstance(a, str):
            out.append(a)
        else:
            raise datum.fail("answers", f"element {i}: expected {{\"answer\": string}} or a string, got {_kind(a)}")
    return out


def _captions(datum: Datum) -> list[str]:
    if not datum.has("sentences") and not datum.has("targets"):
        raise datum.fail("sentences", "missing (or 'targets')")
    name = "sentences" if datum.has("sentences") else "targets"
    value = datum.get(name)
    if not isinstance(value, list) or not value:
        raise datum.fail(name, f"expected a non-empty array of captions, got {_kind(value) if value != [] else 'an empty array'}")
    out = []
    for i, c in enumerate(value):
        if isinstance(c, dict) and isinstance(c.get("raw"), str):
            c = c["raw"]
        if not isinstance(c, str):
            raise datum.fail(name, f"element {i}: expected a string or {{\"raw\": string}}, got {_kind(c)}")
        out.append(c.strip())
    return out


def read_annotations(path: str, task: str, mode: str, karpathy_split: str | None, limit: int | None) -> list[Example]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise InputError(f"{path}: {e.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: invalid JSON: {e}") from None

    karpathy = task == "caption" and isinstance(data, dict) and "images" in data
    if karpathy:
        if karpathy_split is None:
            raise InputError(f"{path}: a Karpathy dataset_coco.json needs --karpathy-split train|val|test")
        data = data["images"]
    elif karpathy_split is not None:
        raise InputError(f"{path}: --karpathy-split needs Karpathy's dataset_coco.json ({{\"images\": [...]}})")
    if not isinstance(data, list):
        raise InputError(f"{path}: expected a JSON array of datums, got {_kind(data)}")

    examples: list[Example] = []
    for index, value in enumerate(data):
        if limit is not None and len(examples) >= limit:
            break
        d = Datum(path, index, value, "image" if karpathy else "datum")
        if task in ("vqa", "gqa"):
            qid = d.identifier("question_id")
            image = d.string("img_id")
            sent = d.first_string("sent", "question")
            label = _score_label(d)
            answers = _raw_answers(d)
            target, score = best_answer(label)
            reference = {"id": qid}
            if answers is not None and task == "vqa":
                reference["answers"] = answers
            if d.has("label"):
                reference["label"] = label
            examples.append(Example(qid, sent, target, score if task == "vqa" else 1.0, [image], reference))
        elif task == "nlvr":
            uid = d.identifier("uid") if d.has("uid") else d.identifier("identifier")
            sent = d.string("sent")
            images = [d.string("img0"), d.string("img1")]
            label = d.get("label")
            if isinstance(label, bool) or label not in (0, 1):
                raise d.fail("label", f"expected 0 or 1, got {json.dumps(label)}")
            answer = "true" if label == 1 else "false"
            examples.append(Example(uid, sent, answer, 1.0, images, {"id": uid, "answer": answer}))
        else:  # caption
            if karpathy:
                split = d.string("split")
                if KARPATHY_SPLITS.get(split, split) != karpathy_split:
                    continue
                filename = d.string("filename")
                image = filename.rsplit(".", 1)[0]
            else:
                image = d.string("img_id")
            captions = _captions(d)
            reference = {"id": image, "captions": captions}
            if mode == "train":
                for caption in captions:
                    if limit is not None and len(examples) >= limit:
                        break
                    examples.append(Example(image, "", caption, 1.0, [image], reference))
            else:
                examples.append(Example(image, "", captions[0], 1.0, [image], reference))
    if not examples:
        raise InputError(f"{path}: no examples" + (f" in Karpathy split '{karpathy_split}'" if karpathy else ""))
    return examples


# ----------------------------------------------------------------------------------------------
# Tokenization


def load_tokenizer(directory: str):
    if not os.path.isdir(directory):
        raise InputError(f"{directory}: not a tokenizer directory")
    known = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "spiece.model")
    if not any(os.path.isfile(os.path.join(directory, name)) for name in known):
        raise InputError(f"{directory}: no tokenizer files ({', '.join(known)})")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except Exception as e:  # noqa: BLE001 — any loading failure is a bad input
        message = " ".join(str(e).split())[:300] or type(e).__name__
        raise InputError(f"{directory}: cannot load a tokenizer: {message}") from None


def check_tokenizer(tokenizer, family: str, where: str) -> None:
    if tokenizer.pad_token_id is None or tokenizer.eos_token_id is None:
        raise InputError(f"{where}: the tokenizer has no pad or eos token")
    probe = tokenizer("a")["input_ids"]
    if family == "bart":
        ok = len(probe) >= 2 and probe[0] == tokenizer.bos_token_id and probe[-1] == tokenizer.eos_token_id
        want = "<s> … </s>"
    else:
        ok = len(probe) >= 1 and probe[-1] == tokenizer.eos_token_id and (
            tokenizer.bos_token_id is None or probe[0] != tokenizer.bos_token_id)
        want = "… </s>"
    if not ok:
        raise InputError(f"{where}: the tokenizer encodes 'a' as {probe}; a {family.upper()} tokenizer gives {want}")


def encode(tokenizer, texts: list[str], length: int) -> tuple[list[list[int]], int]:
    """Token ids truncated to `length` (special tokens kept), and how many were truncated."""
    full = tokenizer(texts)["input_ids"]
    cut = tokenizer(texts, max_length=length, truncation=True)["input_ids"]
    truncated = sum(len(a) > length for a in full)
    for ids in cut:
        if len(ids) > length:
            raise InputError(f"the tokenizer returned {len(ids)} tokens for max_length {length}")
    return cut, truncated


# ----------------------------------------------------------------------------------------------
# Visual features


class FeatureSource:
    """CLIP grid features by image id: an HDF5 file (a dataset per id, or a group with "features"),
    or a directory of `<id>.npy` or `<id>.h5` files (VL-Adapter's `data_clip_RN101_att/`)."""

    def __init__(self, path: str):
        self.path = path
        self.directory = os.path.isdir(path)
        self.h5 = None
        if not self.directory:
            if not os.path.isfile(path):
                raise InputError(f"{path}: no such file or directory")
            self.h5 = _open_h5(path)
        self.cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def close(self):
        if self.h5 is not None:
            self.h5.close()

    def _dir_file(self, image: str) -> str | None:
        for ext in (".npy", ".h5", ".hdf5"):
            p = os.path.join(self.path, image + ext)
            if os.path.isfile(p):
                return p
        return None

    def has(self, image: str) -> bool:
        if self.directory:
            return self._dir_file(image) is not None
        return image in self.h5

    def _read(self, image: str) -> np.ndarray:
        if self.directory:
            p = self._dir_file(image)
            if p is None:
                raise InputError(f"{self.path}: no features for image '{image}'")
            if p.endswith(".npy"):
                try:
                    return np.load(p, allow_pickle=False)
                except (OSError, ValueError) as e:
                    raise InputError(f"{p}: {e}") from None
            with _open_h5(p) as f:
                return _h5_features(f, image, p)
        return _h5_features(self.h5, image, self.path)

    def get(self, image: str, geometry: Geometry) -> np.ndarray:
        """[H, W, F] float32."""
        if image in self.cache:
            self.cache.move_to_end(image)
            return self.cache[image]
        array = np.asarray(self._read(image))
        (h, w), f = geometry.grid, geometry.feature_dim
        if array.shape == (h * w, f):
            array = array.reshape(h, w, f)  # VL-Adapter's rows are the grid row-major (h·W + w)
        elif array.shape != (h, w, f):
            raise InputError(f"{self.path}: image '{image}': features of shape {tuple(array.shape)}, expected "
                             f"({h * w}, {f}) or ({h}, {w}, {f})")
        if array.dtype.kind != "f":
            raise InputError(f"{self.path}: image '{image}': features of dtype {array.dtype}, expected floating point")
        array = array.astype(np.float32, copy=False)
        if not np.isfinite(array).all():
            raise InputError(f"{self.path}: image '{image}': features contain NaN or infinity")
        self.cache[image] = array
        if len(self.cache) > 64:
            self.cache.popitem(last=False)
        return array


def _open_h5(path: str):
    try:
        import h5py
    except ImportError:
        raise InputError(f"{path}: reading HDF5 needs h5py (pip install h5py)") from None
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"{path}: not an HDF5 file ({e})") from None


def _h5_features(f, image: str, where: str) -> np.ndarray:
    import h5py

    for key in (image, "features"):
        if key in f:
            node = f[key]
            if isinstance(node, h5py.Group):
                if "features" not in node:
                    continue
                node = node["features"]
            return node[...]
    raise InputError(f"{where}: no features for image '{image}' (looked for '{image}', '{image}/features', 'features')")


def grid_boxes(geometry: Geometry) -> np.ndarray:
    """Normalised grid-cell boxes (x1, x2, y1, y2), row-major, the first k² rows per image (unpooled)."""
    h, w = geometry.grid
    rows = []
    for i in range(h):
        for j in range(w):
            rows.append((j / w, (j + 1) / w, i / h, (i + 1) / h))
    one = np.asarray(rows, dtype=np.float32)[: geometry.tokens_per_image]
    return np.concatenate([one] * geometry.images, axis=0)


# ----------------------------------------------------------------------------------------------
# Writing: a streamed safetensors file (the header is known up front), atomically


def _write_safetensors(handle, layout, metadata: dict[str, str]) -> None:
    """layout: [(name, dtype "I64"/"F32"/"F16", shape, chunks)] where chunks yields C-contiguous
    little-endian numpy arrays whose bytes, concatenated, are the tensor."""
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    offset = 0
    sizes = {"I64": 8, "F32": 4, "F16": 2}
    for name, dtype, shape, _ in layout:
        nbytes = int(np.prod(shape, dtype=np.int64)) * sizes[dtype]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    handle.write(struct.pack("<Q", len(text)))
    handle.write(text)
    for name, dtype, shape, chunks in layout:
        expected = header[name]["data_offsets"][1] - header[name]["data_offsets"][0]
        written = 0
        for chunk in chunks:
            data = np.ascontiguousarray(chunk).tobytes()
            handle.write(data)
            written += len(data)
        if written != expected:
            raise AssertionError(f"internal: {name}: wrote {written} bytes, expected {expected}")


def _atomic_outputs(paths: list[str]):
    """Temporary files beside the outputs (renamed over them at the end), with the umask's mode."""
    umask = os.umask(0)
    os.umask(umask)
    temps = []
    for p in paths:
        directory = os.path.dirname(os.path.abspath(p))
        fd, temp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(p) + ".", suffix=".tmp")
        os.fchmod(fd, 0o666 & ~umask)
        temps.append((fd, temp))
    return temps


def _little(array: np.ndarray, dtype: str) -> np.ndarray:
    return np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))


def output_paths(output: str) -> tuple[str, str]:
    stem = output[: -len(".safetensors")] if output.endswith(".safetensors") else output
    return stem + ".safetensors", stem + ".references.jsonl"


# ----------------------------------------------------------------------------------------------
# Conversion


@dataclass
class Summary:
    examples: int
    text_truncated: int
    target_truncated: int
    empty_targets: int
    images: int
    outputs: tuple[str, str]
    bytes: int

    def text(self, task: str, source: str, geometry: Geometry, half: bool) -> str:
        g = geometry
        return (f"{task}: {self.examples} examples from {source} → {self.outputs[0]} ({self.bytes / 1e6:.1f} MB), "
                f"{self.outputs[1]}\n"
                f"  text {g.text_length} tokens ({self.text_truncated} truncated); target {g.target_length} tokens "
                f"({self.target_truncated} truncated, {self.empty_targets} empty); {self.images} distinct images, "
                f"{g.images} × {g.grid[0]}×{g.grid[1]}×{g.feature_dim} {'f16' if half else 'f32'} per example, "
                f"{g.tokens} visual tokens")


def convert(annotation: str, task: str, features: str, tokenizer_dir: str, geometry: Geometry, output: str,
            prompt: str | None = None, mode: str = "train", karpathy_split: str | None = None, half: bool = False,
            boxes: str = "zeros", limit: int | None = None) -> Summary:
    if task not in TASKS:
        raise InputError(f"unknown task '{task}' (one of {', '.join(TASKS)})")
    if prompt is None:
        prompt = geometry.prompts.get(task, DEFAULT_PROMPTS[task])
    paths = output_paths(output)
    for p in paths:
        if not os.path.isdir(os.path.dirname(os.path.abspath(p))):
            raise InputError(f"{p}: the directory does not exist")
    examples = read_annotations(annotation, task, mode, karpathy_split, limit)
    n = len(examples)

    source = FeatureSource(features)
    try:
        images = list(OrderedDict.fromkeys(img for e in examples for img in e.images))
        missing = [img for img in images if not source.has(img)]
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise InputError(f"{features}: no features for image '{missing[0]}'{more}")
        for img in images[:1]:
            source.get(img, geometry)  # shape errors before the (slow) tokenizer and any output

        tokenizer = load_tokenizer(tokenizer_dir)
        check_tokenizer(tokenizer, geometry.family, tokenizer_dir)
        texts, text_truncated = encode(tokenizer, [prompt + e.text for e in examples], geometry.text_length)
        targets, target_truncated = encode(tokenizer, [e.target for e in examples], geometry.target_length)

        pad = tokenizer.pad_token_id
        input_ids = np.full((n, geometry.text_length), pad, dtype=np.int64)
        attention_mask = np.zeros((n, geometry.text_length), dtype=np.int64)
        labels = np.full((n, geometry.target_length), -100, dtype=np.int64)
        for i, (ids, target) in enumerate(zip(texts, targets)):
            input_ids[i, : len(ids)] = ids
            attention_mask[i, : len(ids)] = 1
            labels[i, : len(target)] = target
        if geometry.vocab_rows is not None:
            top = max(int(input_ids.max()), int(labels.max()))
            if top >= geometry.vocab_rows:
                raise InputError(f"{tokenizer_dir}: token id {top} is outside the model's {geometry.vocab_rows} vocabulary rows")
        scores = np.asarray([e.score for e in examples], dtype=np.float32)

        box_row = np.zeros((geometry.tokens, 4), dtype=np.float32) if boxes == "zeros" else grid_boxes(geometry)
        feat_dtype = "<f2" if half else "<f4"

        def feature_chunks():
            for e in examples:
                stacked = np.stack([source.get(img, geometry) for img in e.images])
                yield _little(stacked, feat_dtype)

        def box_chunks(chunk=4096):
            block = np.broadcast_to(box_row, (min(chunk, n),) + box_row.shape)
            for start in range(0, n, chunk):
                yield _little(block[: min(chunk, n - start)], "<f4")

        (h, w), f = geometry.grid, geometry.feature_dim
        layout = [
            ("input_ids", "I64", (n, geometry.text_length), [_little(input_ids, "<i8")]),
            ("attention_mask", "I64", (n, geometry.text_length), [_little(attention_mask, "<i8")]),
            ("labels", "I64", (n, geometry.target_length), [_little(labels, "<i8")]),
            ("scores", "F32", (n,), [_little(scores, "<f4")]),
            ("vis_boxes", "F32", (n, geometry.tokens, 4), box_chunks()),
            ("vis_feats", "F16" if half else "F32", (n, geometry.images, h, w, f), feature_chunks()),
        ]
        metadata = {
            "granule_dataset": FORMAT_VERSION, "task": task, "prompt": prompt,
            "source": os.path.basename(annotation), "tokenizer": os.path.basename(os.path.normpath(tokenizer_dir)),
            "examples": str(n), "family": geometry.family, "mode": mode,
        }
        temps = _atomic_outputs(list(paths))
        try:
            with os.fdopen(temps[0][0], "wb") as handle:
                _write_safetensors(handle, layout, metadata)
                handle.flush()
                os.fsync(handle.fileno())
            with os.fdopen(temps[1][0], "w", encoding="utf-8") as handle:
                for e in examples:
                    handle.write(json.dumps({**e.reference, "target": e.target}, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            for (_, temp), final in zip(temps, paths):
                os.replace(temp, final)
            _fsync_dir(os.path.dirname(os.path.abspath(paths[0])))
        except BaseException:
            for _, temp in temps:
                if os.path.exists(temp):
                    os.unlink(temp)
            raise
    finally:
        source.close()
    return Summary(n, text_truncated, target_truncated, sum(1 for e in examples if not e.target), len(images), paths,
                   os.path.getsize(paths[0]))


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------
# Self-test


WORDS = ("vqa gpa nlvr caption : what is on the table ? a cup plate yes no two true false left image "
         "has dogs dog sits man riding horse cat mat red very long question with many words").split()


def _make_tokenizer(directory: str, family: str) -> dict[str, int]:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if family == "bart":
        specials = ["<s>", "<pad>", "</s>", "<unk>"]
        template = "<s> $A </s>"
    else:
        specials = ["<pad>", "</s>", "<unk>"]
        template = "$A </s>"
    vocab = {tok: i for i, tok in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(s, vocab[s]) for s in ("<s>", "</s>") if s in vocab])
    kwargs = dict(eos_token="</s>", pad_token="<pad>", unk_token="<unk>")
    if family == "bart":
        kwargs["bos_token"] = "<s>"
    PreTrainedTokenizerFast(tokenizer_object=tok, **kwargs).save_pretrained(directory)
    return vocab


def _make_bart_bpe_tokenizer(directory: str) -> str:
    """A BartTokenizer (the class facebook/bart-base loads) over the 256 byte symbols, no merges."""
    from transformers import BartTokenizer

    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    symbols = [chr(b) for b in bs] + [chr(256 + i) for i in range(256 - len(bs))]  # GPT-2's bytes_to_unicode
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for sym in symbols:
        vocab.setdefault(sym, len(vocab))
    source = directory + "-src"
    os.makedirs(source)
    with open(os.path.join(source, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f)
    with open(os.path.join(source, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
    BartTokenizer(os.path.join(source, "vocab.json"), os.path.join(source, "merges.txt")).save_pretrained(directory)
    return directory


def self_test() -> None:
    from safetensors import safe_open
    from safetensors.numpy import load_file

    failures = []

    def check(condition, message):
        if not condition:
            failures.append(message)
            print(f"FAIL: {message}")

    try:
        import h5py  # noqa: F401
        have_h5 = True
    except ImportError:
        have_h5 = False
        print("note: h5py is not installed; the HDF5 cases are skipped")

    root = tempfile.mkdtemp(prefix="granule-dataset-selftest-")
    try:
        j = lambda *p: os.path.join(root, *p)  # noqa: E731
        rng = np.random.default_rng(0)
        vocabs = {fam: _make_tokenizer(j(f"tok-{fam}"), fam) for fam in ("bart", "t5")}
        for fam in ("bart", "t5"):
            os.makedirs(j(f"backbone-{fam}"))
            with open(j(f"backbone-{fam}", "config.json"), "w") as f:
                json.dump({"model_type": fam, "vocab_size": 100}, f)

        def spec(name, fam, images, text_length=8, target_length=5, grid=(3, 3), pool=(2, 2), feature_dim=4):
            body = {"backbone": f"backbone-{fam}/config.json", "pet": {"method": "bitfit"},
                    "visual": {"feature_dim": feature_dim, "grid": list(grid), "pool_window": list(pool), "images": images},
                    "batch": {"size": 2, "text_length": text_length, "target_length": target_length},
                    "loss": "score_weighted",
                    "tasks": [{"name": "vqa", "prompt": "vqa: "}, {"name": "gqa", "prompt": "gpa: "}]}
            with open(j(name), "w") as f:
                json.dump(body, f)
            return j(name)

        # Features: 3×3 grid, F = 4; .npy as [9, 4] and [3, 3, 4]; HDF5 both ways.
        os.makedirs(j("npy"))
        feats = {f"img{i}": rng.standard_normal((9, 4)).astype(np.float32) for i in range(6)}
        for i, (k, v) in enumerate(feats.items()):
            np.save(j("npy", k + ".npy"), v if i % 2 == 0 else v.reshape(3, 3, 4))
        if have_h5:
            import h5py

            with h5py.File(j("feats.h5"), "w") as f:
                for i, (k, v) in enumerate(feats.items()):
                    if i % 2 == 0:
                        f.create_dataset(f"{k}/features", data=v)  # VL-Adapter: a group with "features"
                    else:
                        f.create_dataset(k, data=v.reshape(3, 3, 4).astype(np.float16))
            os.makedirs(j("h5dir"))
            for k, v in feats.items():  # VL-Adapter's data_clip_RN101_att/<id>.h5
                with h5py.File(j("h5dir", k + ".h5"), "w") as f:
                    f.create_dataset(f"{k}/features", data=v)

        def write(name, value):
            with open(j(name), "w") as f:
                json.dump(value, f)
            return j(name)

        vqa = write("vqa.json", [
            {"question_id": 101, "img_id": "img0", "sent": "what is on the table?",
             "label": {"cup": 0.6, "plate": 1.0}, "answers": [{"answer": "plate"}] * 7 + [{"answer": "cup"}] * 3},
            {"question_id": 102, "img_id": "img1", "sent": "is a dog on the table?",
             "label": {"yes": 0.6, "no": 0.6}},  # tie: the first
            {"question_id": "q3", "img_id": "img0", "sent": "what", "label": {}},  # empty → "" with score 0
            {"question_id": 104, "img_id": "img2", "question": "a very long question with many words what is on the table ?",
             "label": {"a very long question with many words": 0.3}},  # both truncated
        ])

        def ids(fam, words):
            return [vocabs[fam][w] for w in words.split()]

        def load(out):
            tensors = load_file(out + ".safetensors")
            with safe_open(out + ".safetensors", "np") as f:
                meta = f.metadata()
            with open(out + ".safetensors", "rb") as f:
                header_length = struct.unpack("<Q", f.read(8))[0]
            check((8 + header_length) % 8 == 0, f"{out}: data buffer not 8-byte aligned")
            with open(out + ".references.jsonl") as f:
                refs = [json.loads(line) for line in f]
            return tensors, meta, refs

        def run(annotation, task, fam, spec_path, out, features=None, **kw):
            geometry = resolve_geometry(argparse.Namespace(
                spec=spec_path, family=None, text_length=None, target_length=None, feature_dim=None, grid=None,
                pool=None, images=None), task)
            convert(annotation, task, features or j("npy"), j(f"tok-{fam}"), geometry, j(out), **kw)
            return load(j(out))

        def pad_row(values, length, fill):
            return values + [fill] * (length - len(values))

        # --- VQA, BART ----------------------------------------------------------------------
        sb1 = spec("bart1.json", "bart", 1)
        t, meta, refs = run(vqa, "vqa", "bart", sb1, "vqa")
        check(set(t) == {"input_ids", "attention_mask", "vis_feats", "vis_boxes", "labels", "scores"}, f"vqa tensors {sorted(t)}")
        check(t["input_ids"].dtype == np.int64 and t["input_ids"].shape == (4, 8), f"vqa input_ids {t['input_ids'].dtype} {t['input_ids'].shape}")
        check(t["attention_mask"].dtype == np.int64 and t["attention_mask"].shape == (4, 8), "vqa attention_mask")
        check(t["vis_feats"].dtype == np.float32 and t["vis_feats"].shape == (4, 1, 3, 3, 4), f"vqa vis_feats {t['vis_feats'].shape}")
        check(t["vis_boxes"].dtype == np.float32 and t["vis_boxes"].shape == (4, 4, 4) and not t["vis_boxes"].any(),
              f"vqa vis_boxes {t['vis_boxes'].shape} (4 = (3−2+1)² tokens, zeros)")
        check(t["labels"].dtype == np.int64 and t["labels"].shape == (4, 5), "vqa labels")
        check(t["scores"].dtype == np.float32 and t["scores"].tolist() == [1.0, np.float32(0.6), 0.0, np.float32(0.3)],
              f"vqa scores {t['scores'].tolist()}")
        q0 = [0] + ids("bart", "vqa : what is on the table ?")[:6] + [2]
        check(t["input_ids"][0].tolist() == q0, f"vqa input_ids[0] {t['input_ids'][0].tolist()} != {q0} (truncated, </s> last)")
        q2 = [0] + ids("bart", "vqa : what") + [2]
        check(t["input_ids"][2].tolist() == pad_row(q2, 8, 1), f"vqa input_ids[2] {t['input_ids'][2].tolist()}")
        check(t["attention_mask"][2].tolist() == [1] * 5 + [0] * 3, f"vqa attention_mask[2] {t['attention_mask'][2].tolist()}")
        check(t["labels"][0].tolist() == pad_row([0] + ids("bart", "plate") + [2], 5, -100), f"vqa labels[0] {t['labels'][0].tolist()}")
        check(t["labels"][1].tolist() == pad_row([0] + ids("bart", "yes") + [2], 5, -100), f"vqa labels[1] (tie) {t['labels'][1].tolist()}")
        check(t["labels"][2].tolist() == [0, 2, -100, -100, -100], f"vqa labels[2] (empty) {t['labels'][2].tolist()}")
        check(t["labels"][3].tolist() == [0] + ids("bart", "a very long") + [2], f"vqa labels[3] (truncated) {t['labels'][3].tolist()}")
        check(np.array_equal(t["vis_feats"][0, 0], feats["img0"].reshape(3, 3, 4)), "vqa vis_feats[0] = img0 row-major")
        check(np.array_equal(t["vis_feats"][1, 0], feats["img1"].reshape(3, 3, 4)), "vqa vis_feats[1] = img1 ([H, W, F] input)")
        check(np.array_equal(t["vis_feats"][2], t["vis_feats"][0]), "vqa vis_feats[2] = img0 again")
        check(meta == {"granule_dataset": "1", "task": "vqa", "prompt": "vqa: ", "source": "vqa.json", "tokenizer": "tok-bart",
                       "examples": "4", "family": "bart", "mode": "train"}, f"vqa metadata {meta}")
        check(refs[0] == {"id": 101, "answers": ["plate"] * 7 + ["cup"] * 3, "label": {"cup": 0.6, "plate": 1.0}, "target": "plate"},
              f"vqa references[0] {refs[0]}")
        check(refs[2] == {"id": "q3", "label": {}, "target": ""}, f"vqa references[2] {refs[2]}")
        check(len(refs) == 4, "vqa references count")

        # --- VQA, T5, the real bundled spec's format (7×7 × 2048 → 36 tokens), --half, HDF5 ------
        repo_spec = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "specs", "t5-base-vlpet-large.json")
        if os.path.isfile(repo_spec) and have_h5:
            big = {k: rng.standard_normal((49, 2048)).astype(np.float32) for k in ("img0", "img1", "img2")}
            with h5py.File(j("big.h5"), "w") as f:
                for k, v in big.items():
                    f.create_dataset(f"{k}/features", data=v)
            geometry = resolve_geometry(argparse.Namespace(spec=repo_spec, family=None, text_length=None, target_length=None,
                                                           feature_dim=None, grid=None, pool=None, images=None), "vqa")
            check((geometry.family, geometry.text_length, geometry.target_length, geometry.tokens) == ("t5", 20, 10, 36),
                  f"t5-base spec geometry {geometry}")
            convert(vqa, "vqa", j("big.h5"), j("tok-t5"), geometry, j("vqa-t5.safetensors"), half=True)
            t, meta, refs = load(j("vqa-t5"))
            check(t["vis_feats"].dtype == np.float16 and t["vis_feats"].shape == (4, 1, 7, 7, 2048), f"t5 vis_feats {t['vis_feats'].dtype}")
            check(np.array_equal(t["vis_feats"][3, 0], big["img2"].reshape(7, 7, 2048).astype(np.float16)), "t5 vis_feats[3] = img2 in f16")
            check(t["vis_boxes"].shape == (4, 36, 4), f"t5 vis_boxes {t['vis_boxes'].shape}")
            check(t["labels"][0].tolist() == pad_row(ids("t5", "plate") + [1], 10, -100), f"t5 labels[0] {t['labels'][0].tolist()}")
            check(t["labels"][2].tolist() == [1] + [-100] * 9, f"t5 labels[2] (empty) {t['labels'][2].tolist()}")
            check(t["input_ids"][2].tolist() == pad_row(ids("t5", "vqa : what") + [1], 20, 0), f"t5 input_ids[2] {t['input_ids'][2].tolist()}")
            check(meta["family"] == "t5" and meta["tokenizer"] == "tok-t5", f"t5 metadata {meta}")

        # --- The real BART tokenizer class (byte-level BPE over a toy vocabulary) ---------------
        from transformers import AutoTokenizer

        bpe_dir = _make_bart_bpe_tokenizer(j("tok-bart-bpe"))
        real = AutoTokenizer.from_pretrained(bpe_dir, local_files_only=True)
        bpe_caption = write("caption-bpe.json", [{"img_id": "img0", "sentences": ["a horse"]}])
        geometry = resolve_geometry(argparse.Namespace(spec=sb1, family=None, text_length=None, target_length=None,
                                                       feature_dim=None, grid=None, pool=None, images=None), "caption")
        geometry.vocab_rows = None  # byte-level tokens go past the toy config's 100 rows
        convert(bpe_caption, "caption", j("npy"), bpe_dir, geometry, j("cap-bpe"))
        t, meta, refs = load(j("cap-bpe"))
        want = real.encode("caption: ", max_length=8, truncation=True)  # "caption: " is 9 byte tokens + 2
        check(want[0] == 0 and want[-1] == 2 and t["input_ids"][0].tolist() == want,
              f"{type(real).__name__} 'caption: ' {t['input_ids'][0].tolist()} vs {want}")
        want = real.encode("a horse")
        check(len(want) > 5 and t["labels"][0].tolist() == want[:4] + [2],
              f"{type(real).__name__} label {t['labels'][0].tolist()} vs {want} (truncated, </s> last)")

        # --- GQA: "gpa: " from the spec, unweighted --------------------------------------------
        gqa = write("gqa.json", [{"question_id": "g1", "img_id": "img3", "sent": "what is on the table?", "label": {"cup": 1.0}},
                                 {"question_id": "g2", "img_id": "img4", "sent": "what", "label": {"no": 0.0}}])
        t, meta, refs = run(gqa, "gqa", "bart", sb1, "gqa", features=j("h5dir") if have_h5 else None)
        check(t["input_ids"][0].tolist()[:3] == [0] + ids("bart", "gpa :"), f"gqa prompt {t['input_ids'][0].tolist()}")
        check(t["scores"].tolist() == [1.0, 1.0], f"gqa scores {t['scores'].tolist()}")
        check(t["labels"][1].tolist() == [0, 2, -100, -100, -100], "gqa zero-score label → empty target")
        check(meta["prompt"] == "gpa: ", "gqa metadata prompt")
        check(refs[1] == {"id": "g2", "label": {"no": 0.0}, "target": ""}, f"gqa references[1] {refs[1]}")
        check(np.array_equal(t["vis_feats"][0, 0], feats["img3"].reshape(3, 3, 4)), "gqa vis_feats from <id>.h5 files")

        # --- NLVR: two images; grid boxes -------------------------------------------------------
        nlvr = write("nlvr.json", [
            {"uid": "nlvr2_dev_0", "identifier": "dev-0-0-0", "sent": "the left image has two dogs", "img0": "img0", "img1": "img5", "label": 1},
            {"identifier": "dev-1-0-0", "sent": "a cat", "img0": "img2", "img1": "img3", "label": 0}])
        sb2 = spec("bart2.json", "bart", 2, text_length=12, target_length=4)
        t, meta, refs = run(nlvr, "nlvr", "bart", sb2, "nlvr", features=j("feats.h5") if have_h5 else None, boxes="grid")
        check(t["vis_feats"].shape == (2, 2, 3, 3, 4), f"nlvr vis_feats {t['vis_feats'].shape}")
        img5 = feats["img5"].reshape(3, 3, 4)
        if have_h5:
            img5 = img5.astype(np.float16).astype(np.float32)  # stored as an F16 dataset in feats.h5
        check(np.array_equal(t["vis_feats"][0, 1], img5), "nlvr vis_feats[0, 1] = img1 (img5)")
        check(np.array_equal(t["vis_feats"][1, 0], feats["img2"].reshape(3, 3, 4)), "nlvr vis_feats[1, 0] = img0 (img2)")
        third = np.float32(1 / 3)
        first4 = np.array([[0, third, 0, third], [third, 2 * third, 0, third], [2 * third, 1, 0, third], [0, third, third, 2 * third]],
                          dtype=np.float32)
        check(t["vis_boxes"].shape == (2, 8, 4) and np.allclose(t["vis_boxes"][1], np.concatenate([first4, first4])),
              f"nlvr grid boxes: the first 4 of 9 cells (x1, x2, y1, y2) per image\n{t['vis_boxes'][1]}")
        check(t["labels"].tolist() == [[0] + ids("bart", "true") + [2, -100], [0] + ids("bart", "false") + [2, -100]],
              f"nlvr labels {t['labels'].tolist()}")
        check(refs == [{"id": "nlvr2_dev_0", "answer": "true", "target": "true"}, {"id": "dev-1-0-0", "answer": "false", "target": "false"}],
              f"nlvr references {refs}")

        # --- Caption: train pairs, eval images, Karpathy's file ---------------------------------
        cap = write("caption.json", [
            {"img_id": "img0", "sentences": ["A man riding a horse.", " a man riding "]},
            {"img_id": "img1", "targets": ["a cat sits on a red mat"]}])
        t, meta, refs = run(cap, "caption", "bart", sb1, "cap-train")
        check(t["input_ids"].shape == (3, 8) and t["input_ids"][0].tolist() == pad_row([0] + ids("bart", "caption :") + [2], 8, 1),
              f"caption train input_ids {t['input_ids'].tolist()}")
        check([r["target"] for r in refs] == ["A man riding a horse.", "a man riding", "a cat sits on a red mat"], f"caption targets {refs}")
        check(refs[0]["captions"] == ["A man riding a horse.", "a man riding"] and refs[0]["id"] == "img0", f"caption refs {refs[0]}")
        check(t["labels"][1].tolist() == [0] + ids("bart", "a man riding") + [2], f"caption labels[1] {t['labels'][1].tolist()}")
        check(t["labels"][2].tolist()[-1] == 2, "caption labels[2] truncated with </s> last")
        t, meta, refs = run(cap, "caption", "bart", sb1, "cap-eval", mode="eval")
        check(t["labels"].shape == (2, 5) and meta["mode"] == "eval" and meta["examples"] == "2", f"caption eval {meta}")
        check(refs == [{"id": "img0", "captions": ["A man riding a horse.", "a man riding"], "target": "A man riding a horse."},
                       {"id": "img1", "captions": ["a cat sits on a red mat"], "target": "a cat sits on a red mat"}], f"caption eval refs {refs}")
        karpathy = write("dataset_coco.json", {"images": [
            {"filename": "img0.jpg", "split": "restval", "sentences": [{"raw": "a man riding a horse ."}]},
            {"filename": "img1.jpg", "split": "test", "sentences": [{"raw": "a cat"}, {"raw": "a cat on a mat"}]},
            {"filename": "img2.jpg", "split": "train", "sentences": [{"raw": "a dog"}]}]})
        t, meta, refs = run(karpathy, "caption", "bart", sb1, "cap-k-train", karpathy_split="train")
        check([r["id"] for r in refs] == ["img0", "img2"], f"Karpathy train (restval + train) {refs}")
        t, meta, refs = run(karpathy, "caption", "bart", sb1, "cap-k-test", karpathy_split="test", mode="eval")
        check(refs == [{"id": "img1", "captions": ["a cat", "a cat on a mat"], "target": "a cat"}], f"Karpathy test {refs}")

        # --- Errors through the command line: one line, exit 1, nothing written ------------------
        script = os.path.abspath(__file__)

        def cli(*argv):
            p = subprocess.run([sys.executable, script, *argv], capture_output=True, text=True)
            return p.returncode, p.stderr.strip()

        bad = write("bad.json", [{"question_id": 1, "img_id": "img0", "sent": "what", "label": {}},
                                 {"question_id": 2, "img_id": "img0", "sent": 5, "label": {}}])
        code, err = cli(bad, "--task", "vqa", "--features", j("npy"), "--tokenizer", j("tok-bart"), "--spec", sb1, "-o", j("bad"))
        check(code == 1 and err == f"error: {bad}: datum 1: field 'sent': expected a string, got a number",
              f"bad 'sent': exit {code}, {err!r}")
        missing = write("missing.json", [{"question_id": 1, "img_id": "img0", "sent": "what", "label": {}},
                                         {"question_id": 2, "img_id": "nowhere", "sent": "what", "label": {}}])
        code, err = cli(missing, "--task", "vqa", "--features", j("npy"), "--tokenizer", j("tok-bart"), "--spec", sb1, "-o", j("bad"))
        check(code == 1 and err == f"error: {j('npy')}: no features for image 'nowhere'", f"missing features: exit {code}, {err!r}")
        np.save(j("npy", "short.npy"), np.zeros((8, 4), np.float32))
        short = write("short.json", [{"question_id": 1, "img_id": "img0", "sent": "what", "label": {}},
                                     {"question_id": 2, "img_id": "short", "sent": "what", "label": {}}])
        code, err = cli(short, "--task", "vqa", "--features", j("npy"), "--tokenizer", j("tok-bart"), "--spec", sb1, "-o", j("bad"))
        check(code == 1 and err == f"error: {j('npy')}: image 'short': features of shape (8, 4), expected (9, 4) or (3, 3, 4)",
              f"short features (found while streaming): exit {code}, {err!r}")
        code, err = cli(nlvr, "--task", "nlvr", "--features", j("npy"), "--tokenizer", j("tok-bart"), "--spec", sb1, "-o", j("bad"))
        check(code == 1 and err == f"error: nlvr has 2 image(s) per example; the spec {sb1} says 1", f"nlvr with a 1-image spec: {err!r}")
        badlabel = write("badlabel.json", [{"uid": "u", "sent": "s", "img0": "img0", "img1": "img1", "label": True}])
        code, err = cli(badlabel, "--task", "nlvr", "--features", j("npy"), "--tokenizer", j("tok-bart"), "--spec", sb2, "-o", j("bad"))
        check(code == 1 and err == f"error: {badlabel}: datum 0: field 'label': expected 0 or 1, got true", f"nlvr label true: {err!r}")
        leftovers = [name for name in os.listdir(root) if name.startswith("bad") and not name.endswith(".json") or name.endswith(".tmp")]
        check(not leftovers, f"files left by failed runs: {leftovers}")

        # --- The command line, flags instead of a spec -----------------------------------------
        code = subprocess.run([sys.executable, script, vqa, "--task", "vqa", "--features", j("npy"), "--tokenizer", j("tok-t5"),
                               "--family", "t5", "--text-length", "6", "--target-length", "3", "--feature-dim", "4",
                               "--grid", "3", "3", "--pool", "1", "1", "-o", j("flags")], capture_output=True, text=True)
        check(code.returncode == 0, f"flags run: {code.stderr}")
        if code.returncode == 0:
            t, meta, refs = load(j("flags"))
            check(t["vis_boxes"].shape == (4, 9, 4) and t["input_ids"].shape == (4, 6) and t["labels"].shape == (4, 3),
                  "flags run shapes")
            check(t["labels"][3].tolist() == ids("t5", "a very") + [1], f"flags run truncated T5 label {t['labels'][3].tolist()}")
    finally:
        shutil.rmtree(root, ignore_errors=True)

    if failures:
        print(f"self-test: {len(failures)} check(s) failed")
        sys.exit(1)
    print("self-test: all checks passed")


# ----------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("annotation", nargs="?", help="VL-Adapter annotation JSON (a list of datums; Karpathy's dataset_coco.json for caption)")
    parser.add_argument("--task", choices=TASKS)
    parser.add_argument("--features", help="HDF5 file, or a directory of <img_id>.npy / <img_id>.h5 files")
    parser.add_argument("--tokenizer", help="local Hugging Face tokenizer directory (never downloaded)")
    parser.add_argument("--spec", help="Granule model spec JSON: family, batch lengths, visual grid/pool/images, task prompts")
    parser.add_argument("-o", "--output", help="OUT or OUT.safetensors; also writes OUT.references.jsonl")
    parser.add_argument("--prompt", help="encoder text prefix (default: the spec's task prompt, else vqa: / gpa: / nlvr: / caption:)")
    parser.add_argument("--split-mode", choices=("train", "eval"), default=None,
                        help="caption: train = one example per caption, eval = one per image (default: train; Karpathy val/test: eval)")
    parser.add_argument("--eval", action="store_true", help="same as --split-mode eval")
    parser.add_argument("--karpathy-split", choices=("train", "val", "test"), help="caption from Karpathy's dataset_coco.json (restval counts as train)")
    parser.add_argument("--half", action="store_true", help="store vis_feats as F16 (the runtime widens it)")
    parser.add_argument("--boxes", choices=("zeros", "grid"), default="zeros",
                        help="vis_boxes: zeros (the released code) or normalised grid cells, first k² rows per image")
    parser.add_argument("--limit", type=int, help="convert only the first N examples")
    for name, kw in (("--family", dict(choices=("bart", "t5"))), ("--text-length", dict(type=int)),
                     ("--target-length", dict(type=int)), ("--feature-dim", dict(type=int)),
                     ("--grid", dict(type=int, nargs=2, metavar=("H", "W"))),
                     ("--pool", dict(type=int, nargs=2, metavar=("KH", "KW"))), ("--images", dict(type=int))):
        parser.add_argument(name, help="override the spec" if name != "--family" else "override the spec's backbone family", **kw)
    parser.add_argument("--self-test", action="store_true", help="convert fabricated annotations and features and check the output")
    args = parser.parse_args(argv)

    if args.self_test:
        self_test()
        return 0
    for name in ("annotation", "task", "features", "tokenizer", "output"):
        if getattr(args, name) is None:
            parser.error(f"{'--' + name if name != 'annotation' else 'ANNOTATION'} is required")
    if args.eval and args.split_mode == "train":
        parser.error("--eval contradicts --split-mode train")
    mode = "eval" if args.eval else args.split_mode or ("eval" if args.karpathy_split in ("val", "test") else "train")
    if args.limit is not None and args.limit <= 0:
        parser.error("--limit must be positive")
    try:
        geometry = resolve_geometry(args, args.task)
        summary = convert(args.annotation, args.task, args.features, args.tokenizer, geometry, args.output,
                          prompt=args.prompt, mode=mode, karpathy_split=args.karpathy_split, half=args.half,
                          boxes=args.boxes, limit=args.limit)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(summary.text(args.task, os.path.basename(args.annotation), geometry, args.half))
    return 0


if __name__ == "__main__":
    sys.exit(main())
