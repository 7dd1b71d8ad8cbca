"""PET modules of the Granule reference (spec: /work/shared/spec/vlpet.md, sections 1, 7).

Everything here is written from the specification; the modules are attached to Hugging Face
layer modules with `setattr`, so that `named_parameters()` of the HF model yields exactly the
parameter names of the Granule contract (see README.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """HF `gelu_new`: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (spec 1.1)."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


# ---------------------------------------------------------------------------------------------
# PET configuration (mirrors the "pet" object of spec.json)
# ---------------------------------------------------------------------------------------------

@dataclass
class PETConfig:
    method: str                       # vl-pet | vl-adapter | lora | compacter | bitfit | prompt-tuning | full | none
    granularity: str | None = None    # vl-pet: large | middlex | middley | small
    r: int = 0                        # adapter bottleneck (vl-pet ΔH, vl-adapter, compacter), LoRA rank
    heads: int = 1                    # vl-pet N_h
    gate_r: int = 0                   # vl-pet large r_g
    scale: float = 1.0                # vl-pet s
    value_r: int = 0                  # vl-pet decoder value-path adapter r_v
    base: str | None = None           # vl-pet Table 9: "compacter" (ΔH and value adapter are PHM adapters)
    phm_n: int = 2                    # compacter hypercomplex division n
    alpha: float = 1.0                # LoRA alpha
    length: int = 0                   # prompt tuning: number of prompts P
    mid_dim: int = 0                  # prompt tuning: MLP hidden width

    def to_json(self) -> dict:
        m = self.method
        if m == "vl-pet":
            d = {"method": m, "granularity": self.granularity, "r": self.r, "heads": self.heads}
            if self.granularity == "large":
                d["gate_r"] = self.gate_r
            d.update({"scale": self.scale, "value_r": self.value_r})
            if self.base is not None:
                d.update({"base": self.base, "phm_n": self.phm_n})
            return d
        if m == "vl-adapter":
            return {"method": m, "r": self.r}
        if m == "lora":
            return {"method": m, "r": self.r, "alpha": self.alpha}
        if m == "compacter":
            return {"method": m, "r": self.r, "phm_n": self.phm_n}
        if m == "prompt-tuning":
            return {"method": m, "length": self.length, "mid_dim": self.mid_dim}
        if m in ("bitfit", "full"):
            return {"method": m}
        raise ValueError(f"no spec.json form for PET method {m!r}")


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------

class Adapter(nn.Module):
    """Bottleneck adapter d→r→d; `delta(x) = up(gelu_tanh(down(x)))` (spec 1.5, 7.2).

    The residual is added by the caller: sequential use y = x + delta(x) (VL-Adapter),
    parallel use V = v_proj(E) + delta(E) (VL-PET decoder value path)."""

    def __init__(self, d: int, r: int):
        super().__init__()
        self.down_sampler = nn.Linear(d, r)
        self.up_sampler = nn.Linear(r, d)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        return self.up_sampler(gelu_tanh(self.down_sampler(x)))


class PHMLinear(nn.Module):
    """Parameterised hypercomplex multiplication layer (spec 7.3):
    W = Σ_i kron(A_i, B_i) ∈ R^{in×out}, y = x·W + b,
    A = phm_rule [n, n, n] (A_i = phm_rule[i]), B = phm_weight [n, in/n, out/n]."""

    def __init__(self, in_features: int, out_features: int, n: int):
        super().__init__()
        if in_features % n or out_features % n:
            raise ValueError(f"PHM: in {in_features} and out {out_features} must be multiples of n={n}")
        self.n = n
        self.phm_rule = nn.Parameter(torch.empty(n, n, n))
        self.phm_weight = nn.Parameter(torch.empty(n, in_features // n, out_features // n))
        self.bias = nn.Parameter(torch.empty(out_features))

    def weight_matrix(self) -> torch.Tensor:
        return sum(torch.kron(self.phm_rule[i], self.phm_weight[i]) for i in range(self.n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.weight_matrix() + self.bias


class PHMAdapter(nn.Module):
    """Compacter adapter: both projections are PHM layers; `delta(x) = up(gelu_tanh(down(x)))`."""

    def __init__(self, d: int, r: int, n: int):
        super().__init__()
        self.down_sampler = PHMLinear(d, r, n)
        self.up_sampler = PHMLinear(r, d, n)

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        return self.up_sampler(gelu_tanh(self.down_sampler(x)))


class ValueParallelAdapter(nn.Module):
    """Holder giving the decoder value-path adapter its official name:
    `…encoder_attn.attn_value_parallel_adapter.adapters.shared.{down,up}_sampler.*` (spec 1.5, 10)."""

    def __init__(self, adapter: nn.Module):
        super().__init__()
        self.adapters = nn.ModuleDict({"shared": adapter})

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        return self.adapters["shared"].delta(x)


class LoRALinear(nn.Linear):
    """Frozen linear + low-rank update (spec 7.5): y = W x + b + (x·Aᵀ·Bᵀ)·(alpha/r).
    Keeps the base parameters under their original names (`q_proj.weight`, `q_proj.bias`) and adds
    `lora_A.weight` [r, in], `lora_B.weight` [out, r]. LoRA dropout is off in the goldens."""

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None,
                         device=base.weight.device, dtype=base.weight.dtype)
        self.weight = base.weight
        if base.bias is not None:
            self.bias = base.bias
        self.lora_A = nn.Linear(base.in_features, r, bias=False, device=base.weight.device)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, device=base.weight.device)
        self.scaling = alpha / r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias) + self.lora_B(self.lora_A(x)) * self.scaling


class InputPrompts(nn.Module):
    """Prompt tuning (spec 7.7): P = W_2·tanh(W_1·Emb(0..P−1) + b_1) + b_2 ∈ R^{P×d}."""

    def __init__(self, length: int, d: int, mid_dim: int):
        super().__init__()
        self.length = length
        self.embedding = nn.Embedding(length, d)
        self.mlp = nn.Sequential(nn.Linear(d, mid_dim), nn.Tanh(), nn.Linear(mid_dim, d))

    def forward(self, batch_size: int) -> torch.Tensor:
        p = self.mlp(self.embedding.weight)                     # [P, d]
        return p.unsqueeze(0).expand(batch_size, -1, -1)


# ---------------------------------------------------------------------------------------------
# VL-PET encoder sub-layer module (spec 1.2, 1.3): attached to a HF module under prefix P
# ---------------------------------------------------------------------------------------------

def attach_vlpet(module: nn.Module, S: str, d: int, cfg: PETConfig) -> None:
    """Create ΔH and the G generator for sub-layer kind S ('attn' | 'ff') as attributes of `module`
    (BART encoder layer, or T5 layer.0 / layer.1), giving names P + `{S}_adapter_multihead_*`,
    P + `encoder_{S}_adapter_gating_*` (or P + `{S}_adapter.*` for the Compacter base)."""
    if cfg.base == "compacter":
        setattr(module, f"{S}_adapter", PHMAdapter(d, cfg.r, cfg.phm_n))
    else:
        if cfg.r % cfg.heads:
            raise ValueError(f"VL-PET: r={cfg.r} must be a multiple of heads={cfg.heads}")
        # N_h heads of Linear(d, r/N_h) concatenated ≡ one Linear(d, r) whose rows are the stacked heads.
        setattr(module, f"{S}_adapter_multihead_down", nn.Linear(d, cfg.r))
        setattr(module, f"{S}_adapter_multihead_up", nn.Linear(cfg.r, d))
    g = cfg.granularity
    if g == "large":
        setattr(module, f"encoder_{S}_adapter_gating_large_x_down", nn.Linear(d, cfg.gate_r))
        setattr(module, f"encoder_{S}_adapter_gating_large_x_up", nn.Linear(cfg.gate_r, d))
    elif g == "middlex":
        setattr(module, f"encoder_{S}_adapter_gating_middle_xy_add", nn.Linear(d, 1))
    elif g == "middley":
        setattr(module, f"encoder_{S}_adapter_gating_middle_ia3_add", nn.Parameter(torch.zeros(d)))
    elif g == "small":
        setattr(module, f"encoder_{S}_adapter_gating_small_xy_cat", nn.Linear(2 * d, 1))
    else:
        raise ValueError(f"unknown VL-PET granularity {g!r}")


def vlpet_branch(module: nn.Module, S: str, cfg: PETConfig, X: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """Returns s·(G ⊙ H') with H' = H + ΔH(H); X is the sub-layer input (BART) / un-normalised
    residual stream (T5). The caller adds the residual (and applies the BART post-LN)."""
    if cfg.base == "compacter":
        dH = getattr(module, f"{S}_adapter").delta(H)
    else:
        down = getattr(module, f"{S}_adapter_multihead_down")
        up = getattr(module, f"{S}_adapter_multihead_up")
        dH = up(gelu_tanh(down(H)))
    Hp = H + dH
    g = cfg.granularity
    if g == "large":
        gd = getattr(module, f"encoder_{S}_adapter_gating_large_x_down")
        gu = getattr(module, f"encoder_{S}_adapter_gating_large_x_up")
        G = torch.sigmoid(gu(gelu_tanh(gd(X))))                                  # [B, N, d]
    elif g == "middlex":
        lin = getattr(module, f"encoder_{S}_adapter_gating_middle_xy_add")
        G = torch.sigmoid(lin(X + Hp))                                           # [B, N, 1]
    elif g == "middley":
        z = getattr(module, f"encoder_{S}_adapter_gating_middle_ia3_add")
        G = 1.0 + z                                                              # [d], no sigmoid (code)
    elif g == "small":
        lin = getattr(module, f"encoder_{S}_adapter_gating_small_xy_cat")
        gt = torch.sigmoid(lin(torch.cat([X, Hp], dim=-1)))                      # [B, N, 1]
        G = gt.mean(dim=1, keepdim=True)                                         # [B, 1, 1], all N positions
    else:
        raise ValueError(g)
    return cfg.scale * (G * Hp)
