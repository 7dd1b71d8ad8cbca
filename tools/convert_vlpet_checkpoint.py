#!/usr/bin/env python3
"""Convert a checkpoint trained with the official VL-PET code to Granule's parameter names.

The official trainer saves `torch.save(model.state_dict(), "<name>.pth")` of a `VLBart` or `VLT5`
(spec vlpet.md section 10). Granule's names (tools/reference/README.md, "Golden format") differ in
three places, and the state dict carries tied copies that Granule stores once:

* the multi-head down projection of ΔH is one `nn.Linear` per head,
  `…{attn,ff}_adapter_multihead_down.{h}.{weight,bias}`; Granule stores the heads stacked in head
  order as one `d→r` linear `…{attn,ff}_adapter_multihead_down.{weight,bias}` (spec 1.2);
* the decoder value-path adapter lives in an `AdapterController` keyed by task,
  `…attn_value_parallel_adapter.adapters.<task>.…`; with `--use_single_adapter` every task name
  holds the same tensors, which Granule names `…adapters.shared.…`;
* `lm_head.weight`, the encoder/decoder `embed_tokens.weight` and the visual embedding's
  `obj_order_embedding.weight` are the shared token embedding itself (dropped after checking that
  they are equal to it).

Backbone names (Hugging Face names; BART under `model.`, T5 without a prefix), `final_logits_bias`
and the visual embedding pass through. Anything unrecognised is reported and kept under its name
(`granule init` lists tensors that name nothing in the model as ignored).

    python tools/convert_vlpet_checkpoint.py VQA_LAST.pth -o vlpet.safetensors
    python tools/convert_vlpet_checkpoint.py --self-test
    python tools/convert_vlpet_checkpoint.py --golden-roundtrip Tests/GranuleFrontendTests/Goldens/bart-vlpet-large \\
        --granule .build/debug/granule

Needs torch and safetensors. CI does not run this script.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field

import torch
from safetensors.torch import load_file, save_file

WRAPPER_KEYS = ("model", "state_dict", "module")  # {"model": sd}, Lightning-style, DeepSpeed
TASKS = ("vqa", "gqa", "nlvr", "caption")  # the official multi-task run's task names

MULTIHEAD_DOWN = re.compile(r"^(?P<module>.*(?:attn|ff)_adapter_multihead_down)\.(?P<head>\d+)\.(?P<kind>weight|bias)$")
TASK_ADAPTER = re.compile(r"^(?P<controller>.*\.attn_value_parallel_adapter\.adapters)\.(?P<task>[^.]+)\.(?P<rest>.+)$")

# Names Granule knows (after conversion). BART names are under `model.` (VLBart's base_model_prefix).
_BART_LAYER = r"model\.(?:encoder|decoder)\.layers\.\d+\."
_T5_BLOCK = r"(?:encoder|decoder)\.block\.\d+\.layer\.\d+\."
_PET_MODULE = r"(?:model\.encoder\.layers\.\d+\.|encoder\.block\.\d+\.layer\.[01]\.)"
_VALUE_ADAPTER = (
    r"(?:model\.decoder\.layers\.\d+\.encoder_attn|decoder\.block\.\d+\.layer\.1\.EncDecAttention)"
    r"\.attn_value_parallel_adapter\.adapters\.shared\.(?:down|up)_sampler\.(?:weight|bias|phm_rule|phm_weight)"
)
KNOWN = {
    "bart": [
        r"final_logits_bias",
        r"lm_head\.weight",  # only kept when untied
        r"model\.shared\.weight",
        r"model\.(?:encoder|decoder)\.embed_positions\.weight",
        r"model\.(?:encoder|decoder)\.layernorm_embedding\.(?:weight|bias)",
        _BART_LAYER + r"(?:self_attn|encoder_attn)\.(?:q|k|v|out)_proj\.(?:weight|bias)",
        _BART_LAYER + r"(?:self_attn_layer_norm|encoder_attn_layer_norm|final_layer_norm)\.(?:weight|bias)",
        _BART_LAYER + r"fc[12]\.(?:weight|bias)",
    ],
    "t5": [
        r"shared\.weight",
        r"lm_head\.weight",
        _T5_BLOCK + r"(?:SelfAttention|EncDecAttention)\.[qkvo]\.weight",
        _T5_BLOCK + r"SelfAttention\.relative_attention_bias\.weight",
        _T5_BLOCK + r"layer_norm\.weight",
        _T5_BLOCK + r"DenseReluDense\.(?:wi|wi_0|wi_1|wo)\.weight",
        r"(?:encoder|decoder)\.final_layer_norm\.weight",
    ],
    "pet": [
        _PET_MODULE + r"(?:attn|ff)_adapter_multihead_(?:down|up)\.(?:weight|bias)",
        _PET_MODULE + r"encoder_(?:attn|ff)_adapter_gating_(?:large_x_down|large_x_up|middle_xy_add|small_xy_cat)\.(?:weight|bias)",
        _PET_MODULE + r"encoder_(?:attn|ff)_adapter_gating_middle_ia3_add",
        _VALUE_ADAPTER,
        r"(?:model\.)?encoder\.visual_embedding\.(?:feat_embedding|absolute_vis_pos_embedding)\.[01]\.(?:weight|bias)",
        r"(?:model\.)?encoder\.visual_embedding\.img_order_embedding\.weight",
    ],
}


class ConversionError(Exception):
    pass


@dataclass
class Report:
    family: str = ""
    input_count: int = 0
    notes: list[str] = field(default_factory=list)
    stacked: list[str] = field(default_factory=list)  # "<name> (<heads> heads)"
    renamed: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    unrecognised: list[str] = field(default_factory=list)
    output_count: int = 0

    def summary(self) -> str:
        lines = [f"family: {self.family}; {self.input_count} tensors in, {self.output_count} out"]
        lines += [f"  note: {note}" for note in self.notes]
        heads = sorted({entry.rsplit("(", 1)[1].rstrip(")") for entry in self.stacked})
        lines.append(f"  stacked: {len(self.stacked)} tensors from per-head down projections ({', '.join(heads) or '-'} each)")
        lines.append(f"  renamed: {len(self.renamed)}")
        for old, new in self.renamed[:3]:
            lines.append(f"    {old} -> {new}")
        if len(self.renamed) > 3:
            lines.append(f"    ... {len(self.renamed) - 3} more")
        reasons: dict[str, int] = defaultdict(int)
        for _, why in self.dropped:
            reasons[why] += 1
        lines.append(f"  dropped: {len(self.dropped)}" + "".join(f"\n    {n} × {why}" for why, n in sorted(reasons.items())))
        lines.append(f"  unrecognised (kept under their names): {len(self.unrecognised)}")
        lines += [f"    {name}" for name in self.unrecognised]
        return "\n".join(lines)


# MARK: loading


def unwrap(obj, report: Report) -> dict[str, torch.Tensor]:
    """The state dict inside a torch.load result: itself, or under "model"/"state_dict"/"module"."""
    path = []
    while isinstance(obj, dict):
        if obj and all(isinstance(value, torch.Tensor) for value in obj.values()):
            if path:
                report.notes.append("state dict found under " + "".join(f"[{key!r}]" for key in path))
            return dict(obj)
        wrapper = next((key for key in WRAPPER_KEYS if isinstance(obj.get(key), dict)), None)
        if wrapper is None:
            break
        path.append(wrapper)
        obj = obj[wrapper]
    if isinstance(obj, dict):
        keys = ", ".join(repr(key) for key in list(obj)[:8])
        raise ConversionError(f"no state dict found: a dict whose values are not all tensors (keys: {keys})")
    raise ConversionError(f"no state dict found: the file holds a {type(obj).__name__}")


def load_checkpoint(path: str, trust_pickle: bool, report: Report) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        return load_file(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except OSError as error:
        raise ConversionError(f"cannot read the file: {error.strerror or error}") from error
    except Exception as error:  # noqa: BLE001 - torch raises many kinds
        hint = "" if trust_pickle else " (if the file holds objects besides tensors and you trust it, add --trust-pickle)"
        raise ConversionError(f"cannot load: {error}{hint}") from error
    return unwrap(obj, report)


# MARK: conversion


def detect_family(names) -> str:
    if any(re.search(r"(?:^|\.)encoder\.block\.\d+\.", name) for name in names):
        return "t5"
    if any(re.search(r"(?:^|\.)(?:encoder|decoder)\.layers\.\d+\.", name) for name in names):
        return "bart"
    raise ConversionError("cannot tell BART from T5: no 'encoder.layers.N.' or 'encoder.block.N.' names (pass --family)")


def convert(state: dict[str, torch.Tensor], family: str | None = None, keep_dtype: bool = False,
            report: Report | None = None) -> tuple[dict[str, torch.Tensor], Report]:
    """Granule-named tensors from an official state dict. Raises ConversionError on conflicts."""
    report = report or Report()
    report.input_count = len(state)
    tensors = dict(state)

    # DataParallel / DistributedDataParallel wrap the model as `module`.
    prefixed = [name for name in tensors if name.startswith("module.")]
    if prefixed:
        for name in prefixed:
            stripped = name[len("module."):]
            if stripped in tensors:
                raise ConversionError(f"both '{name}' and '{stripped}' are present")
            tensors[stripped] = tensors.pop(name)
        report.notes.append(f"stripped the DataParallel prefix 'module.' from {len(prefixed)} names")

    family = family or detect_family(tensors)
    report.family = family
    if family == "bart":
        # VLBart's names are under `model.`; a bare VLBartModel state dict lacks it.
        bare = [n for n in tensors if re.match(r"(?:encoder|decoder|shared)\.", n)]
        for name in bare:
            if "model." + name in tensors:
                raise ConversionError(f"both '{name}' and 'model.{name}' are present")
            tensors["model." + name] = tensors.pop(name)
            report.renamed.append((name, "model." + name))
        if bare:
            report.notes.append(f"added the prefix 'model.' to {len(bare)} BART names")

    _untie_embeddings(tensors, family, report)
    _stack_heads(tensors, report)
    _merge_task_adapters(tensors, report)

    patterns = [re.compile(p + "$") for p in KNOWN[family] + KNOWN["pet"]]
    report.unrecognised = sorted(n for n in tensors if not any(p.match(n) for p in patterns))

    out = {}
    for name in sorted(tensors):
        tensor = tensors[name].detach()
        if tensor.is_floating_point() and not keep_dtype:
            tensor = tensor.to(torch.float32)
        out[name] = tensor.contiguous().clone()  # safetensors refuses shared storage
    report.output_count = len(out)
    return out, report


def _untie_embeddings(tensors, family, report):
    prefix = "model." if family == "bart" else ""
    shared = prefix + "shared.weight"
    aliases = [prefix + "encoder.embed_tokens.weight", prefix + "decoder.embed_tokens.weight",
               prefix + "encoder.visual_embedding.obj_order_embedding.weight"]
    if shared not in tensors:
        present = [a for a in aliases if a in tensors]
        if not present:
            return
        tensors[shared] = tensors.pop(present[0])
        report.renamed.append((present[0], shared))
    for alias in aliases:
        if alias in tensors:
            if not _same(tensors[alias], tensors[shared]):
                raise ConversionError(f"'{alias}' differs from '{shared}'; the official model ties them")
            del tensors[alias]
            report.dropped.append((alias, f"tied copy of {shared}"))
    head = tensors.get("lm_head.weight")
    if head is not None and _same(head, tensors[shared]):
        del tensors["lm_head.weight"]
        report.dropped.append(("lm_head.weight", f"tied copy of {shared}"))
    elif head is not None:
        report.notes.append("lm_head.weight differs from the shared embedding: kept (an untied head, e.g. T5 v1.1)")


def _stack_heads(tensors, report):
    groups: dict[tuple[str, str], dict[int, str]] = defaultdict(dict)
    for name in tensors:
        match = MULTIHEAD_DOWN.match(name)
        if match:
            groups[(match["module"], match["kind"])][int(match["head"])] = name
    for (module, kind), heads in sorted(groups.items()):
        count = len(heads)
        if sorted(heads) != list(range(count)):
            raise ConversionError(f"'{module}.*.{kind}': heads {sorted(heads)} are not 0…{count - 1}")
        other = groups.get((module, "bias" if kind == "weight" else "weight"), {})
        if len(other) != count:
            raise ConversionError(f"'{module}': {count} heads have a {kind} but {len(other)} have a "
                                  f"{'bias' if kind == 'weight' else 'weight'}")
        parts = [tensors[heads[h]] for h in range(count)]
        rank = 2 if kind == "weight" else 1
        if any(p.dim() != rank or p.shape != parts[0].shape for p in parts):
            shapes = [tuple(p.shape) for p in parts]
            raise ConversionError(f"'{module}.*.{kind}': head shapes {shapes} are not equal {rank}-d shapes")
        target = f"{module}.{kind}"
        if target in tensors:
            raise ConversionError(f"both '{target}' and per-head '{heads[0]}' are present")
        tensors[target] = torch.cat(parts, dim=0)  # head h owns rows h·r/N_h ..< (h+1)·r/N_h
        for h in range(count):
            del tensors[heads[h]]
        report.stacked.append(f"{target} ({count} heads)")


def _merge_task_adapters(tensors, report):
    groups: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for name in tensors:
        match = TASK_ADAPTER.match(name)
        if match:
            groups[(match["controller"], match["rest"])][match["task"]] = name
    for (controller, rest), by_task in sorted(groups.items()):
        target = f"{controller}.shared.{rest}"
        if list(by_task) == ["shared"]:
            continue
        tasks = sorted(by_task)
        chosen = by_task["shared"] if "shared" in by_task else by_task[tasks[0]]
        for task in tasks:
            if not _same(tensors[by_task[task]], tensors[chosen]):
                raise ConversionError(
                    f"'{by_task[task]}' differs from '{chosen}': the checkpoint has one value-path adapter per task "
                    f"(trained without --use_single_adapter); Granule has a single shared adapter")
        value = tensors[chosen]
        for task in tasks:
            name = by_task[task]
            del tensors[name]
            if name != chosen:
                report.dropped.append((name, "copy of the single task-shared adapter"))
        tensors[target] = value
        if chosen != target:
            report.renamed.append((chosen, target))


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))


def convert_file(input_path: str, output_path: str, family=None, keep_dtype=False, trust_pickle=False) -> Report:
    report = Report()
    state = load_checkpoint(input_path, trust_pickle, report)
    out, report = convert(state, family=family, keep_dtype=keep_dtype, report=report)
    save_file(out, output_path, metadata={"format": "pt", "converted_from": os.path.basename(input_path)})
    return report


# MARK: self-test


def _fake_official(family: str, heads=2, tasks=TASKS, seed=0):
    """A tiny official-style state dict: per-head down projections, task-keyed value adapters
    sharing one tensor per task (as ModuleDict entries of one module do), tied embedding copies."""
    g = torch.Generator().manual_seed(seed)
    d, r, rg, rv, vocab, ffn = 8, 4, 4, 4, 12, 16

    def t(*shape):
        return torch.randn(*shape, generator=g)

    sd: dict[str, torch.Tensor] = {}
    shared = t(vocab, d)
    if family == "bart":
        sd["model.shared.weight"] = shared
        sd["model.encoder.embed_tokens.weight"] = shared
        sd["model.decoder.embed_tokens.weight"] = shared
        sd["model.encoder.visual_embedding.obj_order_embedding.weight"] = shared
        sd["lm_head.weight"] = shared
        sd["final_logits_bias"] = t(1, vocab)
        for side in ("encoder", "decoder"):
            sd[f"model.{side}.embed_positions.weight"] = t(18, d)
            sd[f"model.{side}.layernorm_embedding.weight"] = t(d)
            sd[f"model.{side}.layernorm_embedding.bias"] = t(d)
        layers = {"encoder": 2, "decoder": 1}
        for side, count in layers.items():
            for i in range(count):
                p = f"model.{side}.layers.{i}."
                for attn in ["self_attn"] + (["encoder_attn"] if side == "decoder" else []):
                    for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                        sd[p + f"{attn}.{proj}.weight"], sd[p + f"{attn}.{proj}.bias"] = t(d, d), t(d)
                    sd[p + f"{attn}_layer_norm.weight"], sd[p + f"{attn}_layer_norm.bias"] = t(d), t(d)
                sd[p + "fc1.weight"], sd[p + "fc1.bias"] = t(ffn, d), t(ffn)
                sd[p + "fc2.weight"], sd[p + "fc2.bias"] = t(d, ffn), t(d)
                sd[p + "final_layer_norm.weight"], sd[p + "final_layer_norm.bias"] = t(d), t(d)
        modules = [(f"model.encoder.layers.{i}.", s) for i in range(2) for s in ("attn", "ff")]
        value_adapters = ["model.decoder.layers.0.encoder_attn.attn_value_parallel_adapter.adapters"]
        visual = "model.encoder.visual_embedding."
    else:
        sd["shared.weight"] = shared
        sd["encoder.embed_tokens.weight"] = shared
        sd["decoder.embed_tokens.weight"] = shared
        sd["encoder.visual_embedding.obj_order_embedding.weight"] = shared
        sd["lm_head.weight"] = shared
        for side, sublayers in (("encoder", ("SelfAttention",)), ("decoder", ("SelfAttention", "EncDecAttention"))):
            for i in range(2):
                for j, attn in enumerate(sublayers):
                    p = f"{side}.block.{i}.layer.{j}."
                    for proj in "qkvo":
                        sd[p + f"{attn}.{proj}.weight"] = t(d, d)
                    if i == 0 and attn == "SelfAttention":
                        sd[p + "SelfAttention.relative_attention_bias.weight"] = t(8, 2)
                    sd[p + "layer_norm.weight"] = t(d)
                p = f"{side}.block.{i}.layer.{len(sublayers)}."
                sd[p + "DenseReluDense.wi.weight"], sd[p + "DenseReluDense.wo.weight"] = t(ffn, d), t(d, ffn)
                sd[p + "layer_norm.weight"] = t(d)
            sd[f"{side}.final_layer_norm.weight"] = t(d)
        modules = [(f"encoder.block.{i}.layer.{j}.", s) for i in range(2) for j, s in enumerate(("attn", "ff"))]
        value_adapters = [f"decoder.block.{i}.layer.1.EncDecAttention.attn_value_parallel_adapter.adapters" for i in range(2)]
        visual = "encoder.visual_embedding."

    for p, s in modules:
        for h in range(heads):
            sd[p + f"{s}_adapter_multihead_down.{h}.weight"] = t(r // heads, d)
            sd[p + f"{s}_adapter_multihead_down.{h}.bias"] = t(r // heads)
        sd[p + f"{s}_adapter_multihead_up.weight"], sd[p + f"{s}_adapter_multihead_up.bias"] = t(d, r), t(d)
        g_ = f"encoder_{s}_adapter_gating_large_x_"
        sd[p + g_ + "down.weight"], sd[p + g_ + "down.bias"] = t(rg, d), t(rg)
        sd[p + g_ + "up.weight"], sd[p + g_ + "up.bias"] = t(d, rg), t(d)
    for controller in value_adapters:
        adapter = {"down_sampler.weight": t(rv, d), "down_sampler.bias": t(rv),
                   "up_sampler.weight": t(d, rv), "up_sampler.bias": t(d)}
        for task in tasks:
            for rest, value in adapter.items():
                sd[f"{controller}.{task}.{rest}"] = value
    sd[visual + "feat_embedding.0.weight"], sd[visual + "feat_embedding.0.bias"] = t(d, 6), t(d)
    sd[visual + "absolute_vis_pos_embedding.0.weight"], sd[visual + "absolute_vis_pos_embedding.0.bias"] = t(d, 5), t(d)
    sd[visual + "feat_embedding.1.weight"] = t(d)
    sd[visual + "absolute_vis_pos_embedding.1.weight"] = t(d)
    if family == "bart":
        sd[visual + "feat_embedding.1.bias"] = t(d)
        sd[visual + "absolute_vis_pos_embedding.1.bias"] = t(d)
    sd[visual + "img_order_embedding.weight"] = t(2, d)
    return sd


def _expected(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the conversion must produce, computed independently of convert()."""
    out = {}
    heads: dict[str, list[tuple[int, torch.Tensor]]] = defaultdict(list)
    for name, value in sd.items():
        if name.endswith(("embed_tokens.weight", "obj_order_embedding.weight")) or name == "lm_head.weight":
            continue
        m = re.match(r"(.*_adapter_multihead_down)\.(\d+)\.(weight|bias)$", name)
        if m:
            heads[f"{m[1]}.{m[3]}"].append((int(m[2]), value))
            continue
        m = re.match(r"(.*\.adapters)\.([a-z]+)\.(.*)$", name)
        if m:
            out[f"{m[1]}.shared.{m[3]}"] = value
            continue
        out[name] = value
    for name, parts in heads.items():
        out[name] = torch.cat([v for _, v in sorted(parts, key=lambda p: p[0])])
    return out


def self_test() -> None:
    checks = 0

    def check(condition, message):
        nonlocal checks
        checks += 1
        if not condition:
            raise AssertionError(message)

    def expect_error(sd, fragment, **kwargs):
        try:
            convert(sd, **kwargs)
        except ConversionError as error:
            check(fragment in str(error), f"error {str(error)!r} lacks {fragment!r}")
            return
        raise AssertionError(f"no error (expected one containing {fragment!r})")

    for family in ("bart", "t5"):
        sd = _fake_official(family)
        expected = _expected(sd)
        out, report = convert(sd)
        check(report.family == family, f"{family}: detected {report.family}")
        check(set(out) == set(expected), f"{family}: names differ: extra {sorted(set(out) - set(expected))}, "
              f"missing {sorted(set(expected) - set(out))}")
        for name, value in expected.items():
            check(torch.equal(out[name], value.float()), f"{family}: {name} differs")
        check(report.unrecognised == [], f"{family}: unrecognised {report.unrecognised}")
        check(len(report.stacked) == 8, f"{family}: stacked {len(report.stacked)}")
        layers = 1 if family == "bart" else 2
        check(sum(why.startswith("copy") for _, why in report.dropped) == 4 * 3 * layers, f"{family}: task copies")
        check(sum(why.startswith("tied") for _, why in report.dropped) == 4, f"{family}: tied copies")
        check(not any(n.startswith("lm_head") or "embed_tokens" in n or "obj_order" in n for n in out), f"{family}: tied copy left")

        # The stacked projection computes the concatenated per-head outputs (spec 1.2).
        p = "model.encoder.layers.1." if family == "bart" else "encoder.block.1.layer.1."
        x = torch.randn(3, 8)
        per_head = torch.cat([x @ sd[p + f"ff_adapter_multihead_down.{h}.weight"].T + sd[p + f"ff_adapter_multihead_down.{h}.bias"]
                              for h in range(2)], dim=-1)
        stacked = x @ out[p + "ff_adapter_multihead_down.weight"].T + out[p + "ff_adapter_multihead_down.bias"]
        check(torch.allclose(per_head, stacked, atol=1e-6), f"{family}: stacked projection differs")

        # Wrappers: {"model": {...}} with DataParallel's "module." prefix, through files.
        with tempfile.TemporaryDirectory() as tmp:
            source, target = os.path.join(tmp, "official.pth"), os.path.join(tmp, "granule.safetensors")
            torch.save({"model": {"module." + k: v for k, v in sd.items()}, "args": argparse.Namespace(lr=1e-3)}, source)
            try:
                convert_file(source, target)
                raise AssertionError("a pickle with arbitrary objects loaded without --trust-pickle")
            except ConversionError as error:
                check("--trust-pickle" in str(error), f"{family}: no --trust-pickle hint in {error}")
            report = convert_file(source, target, trust_pickle=True)
            loaded = load_file(target)
            check(set(loaded) == set(expected), f"{family}: file round trip names differ")
            check(all(torch.equal(loaded[n], v.float()) for n, v in expected.items()), f"{family}: file round trip values differ")
            check(any("module." in note for note in report.notes), f"{family}: module. prefix not reported")
            check(any("['model']" in note for note in report.notes), f"{family}: wrapper not reported")

        # Unknown names are kept and reported; half precision becomes f32 unless --keep-dtype.
        extra = dict(sd)
        extra["encoder.mystery.weight" if family == "t5" else "model.encoder.mystery.weight"] = torch.ones(2, dtype=torch.float16)
        out, report = convert(extra)
        check(len(report.unrecognised) == 1 and "mystery" in report.unrecognised[0], f"{family}: unknown not reported")
        check(out[report.unrecognised[0]].dtype == torch.float32, f"{family}: not cast to f32")
        out, _ = convert(extra, keep_dtype=True)
        check(out[report.unrecognised[0]].dtype == torch.float16, f"{family}: --keep-dtype ignored")

        # A checkpoint saved without task-shared adapters cannot be represented.
        bad = dict(sd)
        name = next(n for n in bad if ".adapters.gqa.up_sampler.weight" in n)
        bad[name] = bad[name] + 1
        expect_error(bad, "one value-path adapter per task")
        # Missing or inconsistent heads.
        bad = dict(sd)
        del bad[p + "ff_adapter_multihead_down.1.weight"]
        expect_error(bad, "heads have a")
        bad = dict(sd)
        bad[p + "ff_adapter_multihead_down.2.weight"] = torch.zeros(2, 8)
        bad[p + "ff_adapter_multihead_down.2.bias"] = torch.zeros(2)
        del bad[p + "ff_adapter_multihead_down.1.weight"], bad[p + "ff_adapter_multihead_down.1.bias"]
        expect_error(bad, "are not 0…1")
        bad = dict(sd)
        bad[p + "ff_adapter_multihead_down.1.weight"] = torch.zeros(3, 8)
        expect_error(bad, "head shapes")
        # A tied copy that is not equal to the shared embedding.
        bad = dict(sd)
        alias = ("model." if family == "bart" else "") + "decoder.embed_tokens.weight"
        bad[alias] = bad[alias] + 1
        expect_error(bad, "the official model ties them")
        # An untied head (T5 v1.1) is kept.
        untied = dict(sd)
        untied["lm_head.weight"] = untied["lm_head.weight"] * 2
        out, report = convert(untied)
        check("lm_head.weight" in out and report.unrecognised == [], f"{family}: untied head not kept")

    # A single task name, one head, and a bare VLBartModel state dict (no "model." prefix).
    sd = _fake_official("bart", heads=1, tasks=("vqa",))
    bare = {(k[len("model."):] if k.startswith("model.") else k): v for k, v in sd.items()}
    out, report = convert(bare)
    check(set(out) == set(_expected(sd)), "bare BART names not prefixed with model.")
    check(report.stacked and all("(1 heads)" in s for s in report.stacked), "single head not stacked")
    # Already converted names pass through unchanged.
    again, report = convert(out)
    check(set(again) == set(out) and not report.renamed and not report.dropped and not report.stacked, "not idempotent")
    expect_error({"foo.weight": torch.zeros(1)}, "cannot tell BART from T5")
    try:
        unwrap({"epoch": 3, "optimizer": {"state": 1}}, Report())
        raise AssertionError("unwrap accepted a dict without tensors")
    except ConversionError:
        checks += 1
    print(f"self-test passed: {checks} checks (BART and T5)")


# MARK: golden round trip through `granule init`


def golden_roundtrip(case_dir: str, granule: str, tasks=TASKS) -> None:
    """Official-style checkpoint from a golden case's parameters → convert → `granule init --from` →
    every parameter must come back bit for bit, none freshly initialised and none ignored."""
    spec_path = os.path.join(case_dir, "spec.json")
    with open(spec_path) as f:
        heads = json.load(f)["pet"].get("heads", 1)
    golden = load_file(os.path.join(case_dir, "golden.safetensors"))
    params = {k[len("param:"):]: v for k, v in golden.items() if k.startswith("param:")}
    family = "t5" if "shared.weight" in params else "bart"
    prefix = "model." if family == "bart" else ""

    official: dict[str, torch.Tensor] = {}
    for name, value in params.items():
        m = re.match(r"(.*_adapter_multihead_down)\.(weight|bias)$", name)
        if m:
            for h, part in enumerate(value.chunk(heads, dim=0)):
                official[f"{m[1]}.{h}.{m[2]}"] = part.clone()
            continue
        m = re.match(r"(.*\.adapters)\.shared\.(.*)$", name)
        if m:
            for task in tasks:
                official[f"{m[1]}.{task}.{m[2]}"] = value
            continue
        official[name] = value
    shared = params[prefix + "shared.weight"]
    for alias in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight", "encoder.visual_embedding.obj_order_embedding.weight"):
        official[prefix + alias] = shared
    if "lm_head.weight" not in params:
        official["lm_head.weight"] = shared

    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "official.pth")
        converted = os.path.join(tmp, "converted.safetensors")
        full = os.path.join(tmp, "full.safetensors")
        torch.save({"model": {"module." + k: v for k, v in official.items()}}, source)
        report = convert_file(source, converted)
        print(report.summary())
        run = subprocess.run([granule, "init", spec_path, "--from", converted, "-o", full, "--seed", "7"],
                             capture_output=True, text=True)
        print(run.stdout.strip() + run.stderr.strip())
        if run.returncode != 0:
            raise SystemExit(f"granule init failed with status {run.returncode}")
        result = load_file(full)
    if set(result) != set(params):
        raise SystemExit(f"names differ: extra {sorted(set(result) - set(params))}, missing {sorted(set(params) - set(result))}")
    differing = [n for n in params if not torch.equal(result[n], params[n])]
    if differing:
        raise SystemExit(f"{len(differing)} tensors differ, e.g. {differing[:3]}")
    if " 0 initialised" not in run.stdout or "ignored" in run.stdout:
        raise SystemExit("granule init initialised or ignored tensors: " + run.stdout)
    print(f"round trip ok: {len(params)} parameters of {os.path.basename(case_dir.rstrip('/'))} "
          f"({len(official)} official tensors, {heads} heads) come back bit for bit")


# MARK: command line


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", nargs="?", help="official checkpoint (.pth/.pt/.bin from torch.save, or .safetensors)")
    parser.add_argument("-o", "--output", help="the .safetensors file to write")
    parser.add_argument("--family", choices=("bart", "t5"), help="backbone family (default: detected from the names)")
    parser.add_argument("--keep-dtype", action="store_true", help="keep half/double precision (default: cast floats to f32)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow non-tensor objects in the pickle (torch.load weights_only=False); only for files you trust")
    parser.add_argument("--self-test", action="store_true", help="convert fake BART and T5 official state dicts and check the result")
    parser.add_argument("--golden-roundtrip", metavar="CASE_DIR",
                        help="split a golden case's parameters into an official checkpoint, convert it, run `granule init --from` and compare")
    parser.add_argument("--granule", default=".build/debug/granule", help="the granule binary for --golden-roundtrip")
    args = parser.parse_args(argv)

    if args.self_test:
        self_test()
        return 0
    if args.golden_roundtrip:
        golden_roundtrip(args.golden_roundtrip, args.granule)
        return 0
    if not args.input or not args.output:
        parser.error("INPUT and -o OUTPUT are required (or --self-test / --golden-roundtrip)")
    try:
        report = convert_file(args.input, args.output, family=args.family, keep_dtype=args.keep_dtype,
                              trust_pickle=args.trust_pickle)
    except ConversionError as error:
        print(f"{args.input}: error: {error}", file=sys.stderr)
        return 1
    print(f"{args.input} -> {args.output}")
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
