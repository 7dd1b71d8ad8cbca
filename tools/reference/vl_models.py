"""VL-BART / VL-T5 reference models with PET modules (spec: /work/shared/spec/vlpet.md, 1-5, 7).

The backbone is a Hugging Face `BartForConditionalGeneration` / `T5ForConditionalGeneration`
built from a config dict (no download). Its submodules (projections, LayerNorms, FFNs, embeddings,
LM head, relative-position bucketing) are reused; the encoder/decoder layer forward passes are
written here so that PET modules can be inserted exactly where the spec puts them. With no PET
module and no visual input the forward pass must equal the HF model's own forward
(checked by `make_goldens.py`).

All PET / visual modules are attached inside the HF module tree, so `VLModel.named_params()`
returns exactly the Granule parameter names (HF state-dict names plus the PET names).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BartConfig, BartForConditionalGeneration, T5Config, T5ForConditionalGeneration
from transformers.models.t5.modeling_t5 import T5LayerNorm

from pet import (Adapter, InputPrompts, LoRALinear, PETConfig, PHMAdapter, ValueParallelAdapter,
                 attach_vlpet, vlpet_branch)

NEG = torch.finfo(torch.float32).min   # additive mask value for masked keys


@dataclass
class VisualSpec:
    feature_dim: int = 12
    grid: tuple[int, int] = (3, 3)
    pool_window: tuple[int, int] = (2, 2)
    images: int = 1

    @property
    def tokens_per_image(self) -> int:
        return (self.grid[0] - self.pool_window[0] + 1) * (self.grid[1] - self.pool_window[1] + 1)

    def to_json(self) -> dict:
        return {"feature_dim": self.feature_dim, "grid": list(self.grid),
                "pool_window": list(self.pool_window), "images": self.images}


# ---------------------------------------------------------------------------------------------
# Visual input (spec 3.1, 3.2)
# ---------------------------------------------------------------------------------------------

def pool_visual(vis_feats: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """[B, n_img, gh, gw, F] → max-pool window (stride 1) per image → flatten row-major per image,
    images concatenated: [B, n_img·(gh−wh+1)·(gw−ww+1), F]."""
    B, n, gh, gw, Fd = vis_feats.shape
    x = vis_feats.reshape(B * n, gh, gw, Fd).permute(0, 3, 1, 2)          # [B·n, F, gh, gw]
    x = F.max_pool2d(x, kernel_size=window, stride=1)                     # [B·n, F, ph, pw]
    x = x.permute(0, 2, 3, 1).reshape(B, -1, Fd)                          # row-major tokens
    return x


class VisualEmbedding(nn.Module):
    """v_j = Norm_f(W_f f_j + b_f) + Norm_p(W_p [p_j, a_j] + b_p) + E_img[m_j] + E_tok[V−1−o_j]
    with p = (x1, x2, y1, y2), a = (y2 − y1)·(x2 − x1). BART: LayerNorm eps 1e-5; T5: RMSNorm eps 1e-6."""

    def __init__(self, feature_dim: int, d: int, kind: str, eps: float):
        super().__init__()

        def norm():
            return nn.LayerNorm(d, eps=eps) if kind == "bart" else T5LayerNorm(d, eps=eps)

        self.feat_embedding = nn.Sequential(nn.Linear(feature_dim, d), norm())
        self.absolute_vis_pos_embedding = nn.Sequential(nn.Linear(5, d), norm())
        self.img_order_embedding = nn.Embedding(2, d)

    def forward(self, feats: torch.Tensor, boxes: torch.Tensor, img_ids: torch.Tensor,
                obj_ids: torch.Tensor, tok_emb: torch.Tensor) -> torch.Tensor:
        area = (boxes[..., 3] - boxes[..., 2]) * (boxes[..., 1] - boxes[..., 0])
        pos = torch.cat([boxes, area.unsqueeze(-1)], dim=-1)                # [B, N_v, 5]
        V = tok_emb.shape[0]
        return (self.feat_embedding(feats)
                + self.absolute_vis_pos_embedding(pos)
                + F.embedding(img_ids, self.img_order_embedding.weight)
                + F.embedding(V - 1 - obj_ids, tok_emb))


# ---------------------------------------------------------------------------------------------
# Attention on HF projection modules
# ---------------------------------------------------------------------------------------------

def attention(q_lin, k_lin, v_lin, o_lin, n_heads: int, head_dim: int, scaling: float,
              x: torch.Tensor, kv: torch.Tensor, add_mask: torch.Tensor,
              v_delta=None) -> torch.Tensor:
    """Multi-head attention with an additive mask (which may include a position bias).
    `v_delta(kv)` is added to the value projection (VL-PET decoder parallel value adapter)."""
    B, Nq, _ = x.shape
    Nk = kv.shape[1]
    q = q_lin(x).view(B, Nq, n_heads, head_dim).transpose(1, 2)
    k = k_lin(kv).view(B, Nk, n_heads, head_dim).transpose(1, 2)
    v = v_lin(kv)
    if v_delta is not None:
        v = v + v_delta(kv)
    v = v.view(B, Nk, n_heads, head_dim).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(2, 3)) * scaling + add_mask
    probs = torch.softmax(scores, dim=-1)
    out = torch.matmul(probs, v).transpose(1, 2).reshape(B, Nq, n_heads * head_dim)
    return o_lin(out)


def key_mask(mask: torch.Tensor) -> torch.Tensor:
    """[B, N] of 1/0 → additive [B, 1, 1, N]."""
    return (1.0 - mask.to(torch.float32))[:, None, None, :] * NEG


def causal_mask(T: int) -> torch.Tensor:
    return torch.triu(torch.full((T, T), NEG), diagonal=1)[None, None]


def shift_right(labels: torch.Tensor, start: int, pad: int) -> torch.Tensor:
    """Decoder input = shift-right(labels) with the start token, −100 → pad (spec 3.4)."""
    out = torch.empty_like(labels)
    out[:, 0] = start
    out[:, 1:] = labels[:, :-1]
    return out.masked_fill(out == -100, pad)


def seq2seq_loss(logits: torch.Tensor, labels: torch.Tensor, mode: str,
                 scores: torch.Tensor | None = None) -> torch.Tensor:
    """Spec 3.5. sample_mean: per-sample token mean (÷ max(#targets, 1)), then batch mean;
    score_weighted: per-sample mean × score, then batch mean; token_mean: mean over all targets."""
    B, T, V = logits.shape
    tok = F.cross_entropy(logits.reshape(B * T, V), labels.reshape(B * T),
                          ignore_index=-100, reduction="none").view(B, T)
    valid = (labels != -100)
    if mode == "token_mean":
        return tok.sum() / valid.sum()
    per = tok.sum(dim=1) / valid.sum(dim=1).clamp(min=1)
    if mode == "score_weighted":
        per = per * scores
    elif mode != "sample_mean":
        raise ValueError(f"unknown loss {mode!r}")
    return per.mean()


# ---------------------------------------------------------------------------------------------
# Common model wrapper
# ---------------------------------------------------------------------------------------------

class VLModel(nn.Module):
    kind: str

    def __init__(self, config: dict, pet: PETConfig, visual: VisualSpec | None):
        super().__init__()
        self.config_dict = dict(config)
        self.pet = pet
        self.visual = visual

    # ----- parameters -------------------------------------------------------------------
    def named_params(self) -> dict[str, nn.Parameter]:
        """Every parameter once (tied weights under their first name), by contract name."""
        return dict(self.hf.named_parameters())

    def norm_param_names(self) -> set[str]:
        names = set()
        for mname, mod in self.hf.named_modules():
            if isinstance(mod, (nn.LayerNorm, T5LayerNorm)):
                for pname, _ in mod.named_parameters(recurse=False):
                    names.add(f"{mname}.{pname}")
        return names

    def trainable_names(self) -> list[str]:
        """Trainable set of spec 2 / 7 (name- and module-type based, as the official code does)."""
        names = list(self.named_params())
        m = self.pet.method
        vis = {n for n in names if "visual_embedding" in n}
        if m == "full":
            sel = set(names)
        elif m == "vl-pet":
            enc_ln = {n for n in names if "encoder." in n and ("layer_norm" in n or "layernorm" in n)}
            sel = {n for n in names if "adapter" in n or "gating" in n} | enc_ln | vis
        elif m in ("vl-adapter", "compacter"):
            sel = {n for n in names if "adapter" in n} | (self.norm_param_names() & set(names)) | vis
        elif m == "lora":
            sel = {n for n in names if "lora" in n or "bias" in n} | vis
        elif m == "bitfit":
            sel = {n for n in names if "bias" in n} | vis
        elif m == "prompt-tuning":
            sel = {n for n in names if ".prompt." in n} | vis
        elif m == "none":
            sel = set()
        else:
            raise ValueError(m)
        return sorted(sel)

    # ----- PET construction helpers -------------------------------------------------------
    def _seq_adapter(self, d: int) -> nn.Module:
        if self.pet.method == "vl-adapter":
            return Adapter(d, self.pet.r)
        return PHMAdapter(d, self.pet.r, self.pet.phm_n)

    def _value_adapter(self, d: int) -> nn.Module:
        if self.pet.base == "compacter":
            return ValueParallelAdapter(PHMAdapter(d, self.pet.value_r, self.pet.phm_n))
        return ValueParallelAdapter(Adapter(d, self.pet.value_r))

    def _loraize(self, attn: nn.Module, names: tuple[str, str]) -> None:
        for n in names:
            setattr(attn, n, LoRALinear(getattr(attn, n), self.pet.r, self.pet.alpha))

    @property
    def seq_adapters(self) -> bool:
        return self.pet.method in ("vl-adapter", "compacter")

    def visual_ids(self, B: int) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.visual.tokens_per_image
        n = self.visual.images
        img = torch.arange(n).repeat_interleave(k)
        obj = torch.arange(k).repeat(n)
        return img.expand(B, -1), obj.expand(B, -1)

    def loss(self, batch: dict, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.forward(batch)
        return logits, seq2seq_loss(logits, batch["labels"], mode, batch.get("scores"))


# ---------------------------------------------------------------------------------------------
# VL-BART
# ---------------------------------------------------------------------------------------------

class VLBart(VLModel):
    kind = "bart"

    def __init__(self, config: dict, pet: PETConfig, visual: VisualSpec | None):
        super().__init__(config, pet, visual)
        cfg = BartConfig(**config)
        cfg._attn_implementation = "eager"
        self.hf = BartForConditionalGeneration(cfg)
        self.cfg = cfg
        d = cfg.d_model
        enc, dec = self.hf.model.encoder, self.hf.model.decoder
        if visual is not None:
            enc.visual_embedding = VisualEmbedding(visual.feature_dim, d, "bart", 1e-5)
        m = pet.method
        if m == "prompt-tuning":
            enc.prompt = InputPrompts(pet.length, d, pet.mid_dim)
        for layer in enc.layers:
            if m == "vl-pet":
                attach_vlpet(layer, "attn", d, pet)
                attach_vlpet(layer, "ff", d, pet)
            elif self.seq_adapters:
                layer.attn_adapter = self._seq_adapter(d)
                layer.ff_adapter = self._seq_adapter(d)
            elif m == "lora":
                self._loraize(layer.self_attn, ("q_proj", "v_proj"))
        for layer in dec.layers:
            if m == "vl-pet":
                layer.encoder_attn.attn_value_parallel_adapter = self._value_adapter(d)
            elif self.seq_adapters:
                layer.attn_adapter = self._seq_adapter(d)
                layer.cross_attn_adapter = self._seq_adapter(d)
                layer.ff_adapter = self._seq_adapter(d)
            elif m == "lora":
                self._loraize(layer.self_attn, ("q_proj", "v_proj"))
                self._loraize(layer.encoder_attn, ("q_proj", "v_proj"))
        self.embed_scale = math.sqrt(d) if cfg.scale_embedding else 1.0
        self.hf.eval()

    def named_buffers_contract(self) -> dict[str, torch.Tensor]:
        return {"final_logits_bias": self.hf.final_logits_bias}

    @staticmethod
    def _attn(attn, x, kv, mask, v_delta=None):
        return attention(attn.q_proj, attn.k_proj, attn.v_proj, attn.out_proj, attn.num_heads,
                         attn.head_dim, attn.scaling, x, kv, mask, v_delta)

    def _sublayer_out(self, layer, S: str, X, H):
        """Branch added to the residual for encoder sub-layer S (before the post-LN)."""
        if self.pet.method == "vl-pet":
            return vlpet_branch(layer, S, self.pet, X, H)
        if self.seq_adapters:
            return H + getattr(layer, f"{S}_adapter").delta(H)
        return H

    def encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.hf.model.encoder
        W = self.hf.model.shared.weight
        ids, am = batch["input_ids"], batch["attention_mask"]
        B, L = ids.shape
        x = F.embedding(ids, W) * self.embed_scale + enc.embed_positions.weight[2:2 + L]
        mask = am.to(torch.float32)
        if self.pet.method == "prompt-tuning":
            p = enc.prompt(B)
            x = torch.cat([p, x], dim=1)
            mask = torch.cat([torch.ones(B, p.shape[1]), mask], dim=1)
        x = enc.layernorm_embedding(x)                       # text (and prompts) only
        if self.visual is not None:
            feats = pool_visual(batch["vis_feats"], self.visual.pool_window)
            img, obj = self.visual_ids(B)
            v = enc.visual_embedding(feats, batch["vis_boxes"], img, obj, W)
            x = torch.cat([x, v], dim=1)
            mask = torch.cat([mask, torch.ones(B, v.shape[1])], dim=1)
        ext = key_mask(mask)
        for layer in enc.layers:
            X1 = x
            H = self._attn(layer.self_attn, x, x, ext)
            x = layer.self_attn_layer_norm(X1 + self._sublayer_out(layer, "attn", X1, H))
            X2 = x
            H = layer.fc2(layer.activation_fn(layer.fc1(x)))
            x = layer.final_layer_norm(X2 + self._sublayer_out(layer, "ff", X2, H))
        return x, mask

    def forward(self, batch: dict) -> torch.Tensor:
        E, enc_mask = self.encode(batch)
        dec = self.hf.model.decoder
        W = self.hf.model.shared.weight
        labels = batch["labels"]
        T = labels.shape[1]
        dec_ids = shift_right(labels, self.cfg.decoder_start_token_id, self.cfg.pad_token_id)
        y = F.embedding(dec_ids, W) * self.embed_scale + dec.embed_positions.weight[2:2 + T]
        y = dec.layernorm_embedding(y)
        self_mask = causal_mask(T)
        cross_mask = key_mask(enc_mask)
        vl_pet = self.pet.method == "vl-pet"
        for layer in dec.layers:
            h = self._attn(layer.self_attn, y, y, self_mask)
            if self.seq_adapters:
                h = h + layer.attn_adapter.delta(h)
            y = layer.self_attn_layer_norm(y + h)
            vd = layer.encoder_attn.attn_value_parallel_adapter.delta if vl_pet else None
            h = self._attn(layer.encoder_attn, y, E, cross_mask, vd)
            if self.seq_adapters:
                h = h + layer.cross_attn_adapter.delta(h)
            y = layer.encoder_attn_layer_norm(y + h)
            h = layer.fc2(layer.activation_fn(layer.fc1(y)))
            if self.seq_adapters:
                h = h + layer.ff_adapter.delta(h)
            y = layer.final_layer_norm(y + h)
        return self.hf.lm_head(y) + self.hf.final_logits_bias


# ---------------------------------------------------------------------------------------------
# VL-T5 (original T5 and T5 v1.1)
# ---------------------------------------------------------------------------------------------

class VLT5(VLModel):
    kind = "t5"

    def __init__(self, config: dict, pet: PETConfig, visual: VisualSpec | None):
        super().__init__(config, pet, visual)
        cfg = T5Config(**config)
        cfg._attn_implementation = "eager"
        self.hf = T5ForConditionalGeneration(cfg)
        self.cfg = cfg
        self.tied = config.get("tie_word_embeddings", True)
        d = cfg.d_model
        if not self.tied:
            # transformers 5 always ties T5's lm_head to `shared`; T5 v1.1 has its own lm_head.
            self.hf.lm_head = nn.Linear(d, cfg.vocab_size, bias=False)
        enc, dec = self.hf.encoder, self.hf.decoder
        if visual is not None:
            enc.visual_embedding = VisualEmbedding(visual.feature_dim, d, "t5", 1e-6)
        m = pet.method
        if m == "prompt-tuning":
            raise NotImplementedError("prompt tuning is a BART-only baseline in the goldens")
        for block in enc.block:
            if m == "vl-pet":
                attach_vlpet(block.layer[0], "attn", d, pet)
                attach_vlpet(block.layer[1], "ff", d, pet)
            elif self.seq_adapters:
                for j in (0, 1):
                    block.layer[j].adapter = self._seq_adapter(d)
            elif m == "lora":
                self._loraize(block.layer[0].SelfAttention, ("q", "v"))
        for block in dec.block:
            if m == "vl-pet":
                block.layer[1].EncDecAttention.attn_value_parallel_adapter = self._value_adapter(d)
            elif self.seq_adapters:
                for j in (0, 1, 2):
                    block.layer[j].adapter = self._seq_adapter(d)
            elif m == "lora":
                self._loraize(block.layer[0].SelfAttention, ("q", "v"))
                self._loraize(block.layer[1].EncDecAttention, ("q", "v"))
        self.hf.eval()

    def named_buffers_contract(self) -> dict[str, torch.Tensor]:
        return {}

    @staticmethod
    def _attn(attn, x, kv, mask, v_delta=None):
        return attention(attn.q, attn.k, attn.v, attn.o, attn.n_heads, attn.key_value_proj_dim,
                         1.0, x, kv, mask, v_delta)    # T5: no 1/√d scaling

    def _sublayer_out(self, sub, S: str, X, H):
        if self.pet.method == "vl-pet":
            return vlpet_branch(sub, S, self.pet, X, H)
        if self.seq_adapters:
            return H + sub.adapter.delta(H)
        return H

    def encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.hf.encoder
        W = self.hf.shared.weight
        ids, am = batch["input_ids"], batch["attention_mask"]
        B, L = ids.shape
        x = F.embedding(ids, W)                                  # no embedding scaling
        mask = am.to(torch.float32)
        if self.visual is not None:
            feats = pool_visual(batch["vis_feats"], self.visual.pool_window)
            img, obj = self.visual_ids(B)
            v = enc.visual_embedding(feats, batch["vis_boxes"], img, obj, W)
            x = torch.cat([x, v], dim=1)
            mask = torch.cat([mask, torch.ones(B, v.shape[1])], dim=1)
        N = x.shape[1]
        rel = enc.block[0].layer[0].SelfAttention
        bias = torch.zeros(1, rel.n_heads, N, N)
        bias[:, :, :L, :L] = rel.compute_bias(L, L)              # text×text block only
        ext = bias + key_mask(mask)                              # reused by every layer
        for block in enc.block:
            sa, ff = block.layer[0], block.layer[1]
            X = x
            H = self._attn(sa.SelfAttention, sa.layer_norm(X), sa.layer_norm(X), ext)
            x = X + self._sublayer_out(sa, "attn", X, H)
            X = x
            H = ff.DenseReluDense(ff.layer_norm(X))
            x = X + self._sublayer_out(ff, "ff", X, H)
        return enc.final_layer_norm(x), mask

    def forward(self, batch: dict) -> torch.Tensor:
        E, enc_mask = self.encode(batch)
        dec = self.hf.decoder
        W = self.hf.shared.weight
        labels = batch["labels"]
        T = labels.shape[1]
        dec_ids = shift_right(labels, self.cfg.decoder_start_token_id, self.cfg.pad_token_id)
        y = F.embedding(dec_ids, W)
        rel = dec.block[0].layer[0].SelfAttention
        self_mask = rel.compute_bias(T, T) + causal_mask(T)        # causal buckets (is_decoder)
        cross_mask = key_mask(enc_mask)                             # no bias in cross-attention
        vl_pet = self.pet.method == "vl-pet"
        for block in dec.block:
            sa, ca, ff = block.layer[0], block.layer[1], block.layer[2]
            n = sa.layer_norm(y)
            h = self._attn(sa.SelfAttention, n, n, self_mask)
            if self.seq_adapters:
                h = h + sa.adapter.delta(h)
            y = y + h
            vd = ca.EncDecAttention.attn_value_parallel_adapter.delta if vl_pet else None
            h = self._attn(ca.EncDecAttention, ca.layer_norm(y), E, cross_mask, vd)
            if self.seq_adapters:
                h = h + ca.adapter.delta(h)
            y = y + h
            h = ff.DenseReluDense(ff.layer_norm(y))
            if self.seq_adapters:
                h = h + ff.adapter.delta(h)
            y = y + h
        y = dec.final_layer_norm(y)
        if self.tied:
            y = y * (self.cfg.d_model ** -0.5)
        return self.hf.lm_head(y)


def build_model(kind: str, config: dict, pet: PETConfig, visual: VisualSpec | None) -> VLModel:
    return {"bart": VLBart, "t5": VLT5}[kind](config, pet, visual)
