/* reference_bwd.h: the float64 CPU reference of the backward pass (dense;
 * causal both ways, GQA/MQA), written plainly from the definition:
 *   P = softmax(Q K^T * scale + mask)  (rows that see no key: P = 0)
 *   dV = P^T dO,  dP = dO V^T,  D_i = sum_j P_ij dP_ij,
 *   dS = P * (dP - D),  dQ = scale dS K,  dK = scale dS^T Q
 * with dK and dV of a kv head summed over its query heads. */
#ifndef FG_REFERENCE_BWD_H
#define FG_REFERENCE_BWD_H
#include <stdint.h>
#include "flashgen.h"
#include "runtime/reference.h"

/* Inputs and outputs as float64, contiguous BSHD: q, dq [batch, seqlen_q,
 * heads_q, head_dim]; dout [batch, seqlen_q, heads_q, head_dim_v]; k, dk
 * [batch, seqlen_k, heads_kv, head_dim]; v, dv [batch, seqlen_k, heads_kv,
 * head_dim_v] (head_dim_v: fg_desc_head_dim_v(d), the value head dim).  d gives sizes, causal mode and scale (its strides
 * are not read); L the host layout (NULL: dense) and m its element mask
 * (NULL: none), as fg_ref_visible_mask reads them.  Returns 0 when out of
 * memory. */
int fg_reference_backward_f64(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                              const double *q, const double *k, const double *v, const double *dout, double *dq,
                              double *dk, double *dv);
/* The same from 16-bit host tensors laid out with d's strides (q, k, v) and
 * its do_strides (dout; all zero: o_strides).  Outputs as above. */
int fg_reference_backward(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                          const uint16_t *q, const uint16_t *k, const uint16_t *v, const uint16_t *dout, double *dq,
                          double *dk, double *dv);
/* The float64 forward on the same contiguous arrays: o like dout (the
 * finite-difference self-test of the reference differentiates it). */
int fg_reference_forward_f64(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                             const double *q, const double *k, const double *v, double *o);

/* With the score modifications (runtime/reference.h's fg_ref_mods: slopes
 * and sinks as host copies; softcap and the window from d; a user score
 * expression is refused: returns 0):
 *   dS = P * (dP - D) * dlogit, dlogit = 1 - tanh^2 of softcap (else 1),
 *   D_i = dout_i . o_i still (the sink's share multiplies no value), and
 *   dsinks[h] = -sum_{b, i} exp(sink_h - lse_{b,h,i}) D_{b,h,i}
 * (dsinks [heads_q] float64, may be NULL). */
int fg_reference_backward_mods_f64(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                                   const fg_ref_mods *mods, const double *q, const double *k, const double *v,
                                   const double *dout, double *dq, double *dk, double *dv, double *dsinks);
int fg_reference_backward_mods(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                               const fg_ref_mods *mods, const uint16_t *q, const uint16_t *k, const uint16_t *v,
                               const uint16_t *dout, double *dq, double *dk, double *dv, double *dsinks);
int fg_reference_forward_mods_f64(const fg_attention_desc *d, const fg_block_layout_desc *L, const fg_ref_mask *m,
                                  const fg_ref_mods *mods, const double *q, const double *k, const double *v, double *o);
#endif
