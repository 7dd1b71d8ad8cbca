"""Hand count of the matmul FLOPs of one VL-BART + VL-PET training step (forward + backward, no
optimizer), to cross-check the count `granule stats` prints for @loss_grad.

A GEMM of [M, K] x [K, N] is 2·M·K·N FLOPs; elementwise work, softmax, LayerNorm and the loss
are not counted (1.2% of the total here). Backward follows the rules of Granule's autodiff:

* every GEMM whose input depends on a trainable parameter gets its input-gradient GEMM (as many
  FLOPs as the forward GEMM); an attention matmul (Q·Kᵀ, P·V) gets two;
* only trainable weights get a weight-gradient GEMM (VL-PET ΔH and gates, the decoder value
  adapters, the visual feature and box projections); the frozen backbone gets none;
* nothing upstream of the first trainable parameter is differentiated: the decoder's token
  embeddings and its first self-attention block are frozen and independent of every trainable
  parameter, so decoder layer 0's self-attention has no backward at all, and its cross-attention
  needs dK, dV but no dQ (nor the q_proj input gradient); the visual projections need no input
  gradient (their inputs are the batch).

For BART-base VL-PET-large at batch 4 (20 text + 36 visual tokens, 10 targets) this gives
forward 31.976 + backward 33.996 = 65.972 GFLOP, exactly the sum over the `gemm` lines of
`granule stats SPEC --schedule` for @loss_grad (and 31.976 for @loss); the @loss_grad total
`granule stats` prints, 66.73 GFLOP, adds 0.76 GFLOP of elementwise, normalisation, softmax and
loss work, which this formula leaves out.
"""

from __future__ import annotations


def bart_vlpet_step_flops(spec: dict, config: dict) -> dict[str, float]:
    d = config["d_model"]
    f_enc, f_dec = config["encoder_ffn_dim"], config["decoder_ffn_dim"]
    Le, Ld = config["encoder_layers"], config["decoder_layers"]
    V = spec.get("resize_vocab", config["vocab_size"])
    pet = spec["pet"]
    if pet["method"] != "vl-pet" or pet.get("base", "adapter") != "adapter" or pet["granularity"] != "large":
        raise ValueError("the hand formula covers VL-PET-large (adapter base) only")
    r, rg, rv = pet["r"], pet["gate_r"], pet["value_r"]
    B, L, T = spec["batch"]["size"], spec["batch"]["text_length"], spec["batch"]["target_length"]
    v = spec["visual"]
    Nv = v["images"] * (v["grid"][0] - v["pool_window"][0] + 1) * (v["grid"][1] - v["pool_window"][1] + 1)
    Fv = v["feature_dim"]
    N = L + Nv
    Me, Md = B * N, B * T

    def gemm(m, k, n):
        return 2.0 * m * k * n

    fwd = bwd = 0.0
    # Visual embedding: weight gradients only.
    vis = gemm(B * Nv, Fv, d) + gemm(B * Nv, 5, d)
    fwd += vis
    bwd += vis
    for _ in range(Le):
        dense = 4 * gemm(Me, d, d) + gemm(Me, d, f_enc) + gemm(Me, f_enc, d)
        attn = 2 * B * gemm(N, d, N)                      # Q·Kᵀ and P·V over all heads
        vlpet = 2 * (gemm(Me, d, r) + gemm(Me, r, d) + gemm(Me, d, rg) + gemm(Me, rg, d))
        fwd += dense + attn + vlpet
        bwd += dense + 2 * attn + 2 * vlpet               # input grads; attention ×2; PET input + weight grads
    for layer in range(Ld):
        self_proj = 4 * gemm(Md, d, d)
        self_attn = 2 * B * gemm(T, d, T)
        cross_q_o = 2 * gemm(Md, d, d)
        cross_k_v = 2 * gemm(Me, d, d)
        value_adapter = gemm(Me, d, rv) + gemm(Me, rv, d)
        cross_attn = 2 * B * gemm(T, d, N)
        ffn = gemm(Md, d, f_dec) + gemm(Md, f_dec, d)
        fwd += self_proj + self_attn + cross_q_o + cross_k_v + value_adapter + cross_attn + ffn
        if layer == 0:
            # No backward through the first self-attention; cross-attention: out_proj input grad,
            # dP (P·V) and dV, dS → dK only (no dQ), K/V projection input grads, value adapter.
            bwd += gemm(Md, d, d) + 1.5 * cross_attn + cross_k_v + 2 * value_adapter + ffn
        else:
            bwd += self_proj + 2 * self_attn + cross_q_o + 2 * cross_attn + cross_k_v + 2 * value_adapter + ffn
    head = gemm(Md, d, V)
    fwd += head
    bwd += head                                           # input gradient only (tied, frozen)
    return {"forward": fwd, "backward": bwd, "total": fwd + bwd}
