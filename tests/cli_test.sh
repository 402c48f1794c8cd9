#!/usr/bin/env bash
# flashgen gen / compile / help without a GPU: configuration fields that
# make a SPEC explicit, the --arch check, help texts printed verbatim.
set -u
fg="$1"
. "$(dirname "$0")/expect.sh"
# q_in_regs and min_blocks alone are configuration fields (they were dropped
# unless a block size was given)
expect q_in_regs 0 'Q_IN_REGS = true' -- "$fg" gen 'hdim=64,q_in_regs=1'
expect q_in_regs-key 0 'variant: fwd_mma:.*q_in_regs=1,' -- "$fg" gen 'hdim=64,q_in_regs=1'
expect min_blocks 0 '__launch_bounds__\(128, 2\)' -- "$fg" gen 'hdim=64,min_blocks=2'
expect wgmma-q_in_regs 2 'q_in_regs=1 is a knob of the mma.sync path' -- "$fg" gen 'hdim=64,wgmma=1,q_in_regs=1'
expect tune-min_blocks 2 'SPEC takes hdim, hdim_v, dtype, causal, kind=fwd\|bwd and wgmma only' -- "$fg" tune 'hdim=64,min_blocks=2'
expect tune-q_in_regs 2 'SPEC takes hdim, hdim_v, dtype, causal, kind=fwd\|bwd and wgmma only' -- "$fg" tune 'hdim=64,q_in_regs=0'
# the backward has its own tuning (kind=bwd); score modifications and inference are not tuned
expect tune-infer 2 'SPEC takes hdim, hdim_v, dtype, causal, kind=fwd\|bwd' -- "$fg" tune 'hdim=64,infer=1'
expect tune-mods 2 'score-modification calls use the heuristic' -- "$fg" tune 'hdim=64,mods=softcap'
expect tune-kind-spec 2 '--kind goes with --all' -- "$fg" tune 'hdim=64,kind=bwd' --kind bwd
expect tune-kind-bad 2 '--kind must be fwd, bwd or both' -- "$fg" tune --all --kind sideways
expect help-tune-bwd 0 'kind=bwd tunes the backward pass' -- "$fg" help tune
# a value head dim of its own: hdim_v in the SPEC, --head-dim-v for run
expect hdim_v-gen 0 'static constexpr int DV = 128;' -- "$fg" gen 'hdim=192,hdim_v=128,wgmma=0' --arch sm_80
expect hdim_v-key 0 'variant: fwd_ws:hdim=192,hdim_v=128,' -- "$fg" gen 'hdim=192,hdim_v=128'
expect hdim_v-wgmma 2 'take head_dim_v == head_dim' -- "$fg" gen 'hdim=192,hdim_v=128,wgmma=1'
expect hdim_v-mla 2 'head_dim_v 512 is not supported.*576/512' -- "$fg" gen 'hdim=192,hdim_v=512'
expect hdim_v-bad 2 'head_dim_v 12 is not supported' -- "$fg" compile 'hdim=64,hdim_v=12'
expect hdim_v-run 0 'fwd_mma:hdim=40,hdim_v=72,' -- "$fg" run 'hdim=40' --head-dim-v 72
# --arch: sm_XY[a] only (it reaches the banner and NVRTC's options)
expect arch-newline 2 'not a GPU architecture' -- "$fg" gen 'hdim=64,block_m=128' --arch $'sm_90a\n#include "/etc/passwd"'
expect_not arch-no-include '^#include "/etc/passwd"' -- "$fg" gen 'hdim=64,block_m=128' --arch $'sm_90a\n#include "/etc/passwd"'
expect arch-option 2 'not a GPU architecture' -- "$fg" compile 'hdim=64,block_m=128' --arch 'sm_90a --device-debug'
expect arch-short 2 'not a GPU architecture' -- "$fg" gen 'hdim=64,block_m=128' --arch sm_9
expect arch-ok 0 'arch=sm_80' -- "$fg" gen 'hdim=64,block_m=128' --arch sm_80
# bench --config: a SPEC's configuration keys, the rest refused before any GPU work
expect bench-config-key 2 "takes block_m, block_n, warps, stages and wgmma only" -- "$fg" bench --config 'block_m=128,pingpong=0'
expect bench-config-variant 2 "takes block_m, block_n, warps, stages and wgmma only" -- "$fg" bench --config 'dtype=fp16'
expect bench-config-value 2 "bad value '17x' for SPEC key 'block_n'" -- "$fg" bench --config 'block_n=17x'
expect bench-config-empty 2 "bad value '' for SPEC key 'block_n'" -- "$fg" bench --config 'block_n='
expect bench-config-path 2 "give the kernel family once" -- "$fg" bench --config 'wgmma=2' --path tma
expect help-bench-config 0 'wgmma=2,block_m=128,block_n=176' -- "$fg" help bench
# help texts are printed as they are written (fputs, not printf)
expect help-tune 0 'more than 1% faster' -- "$fg" help tune
expect_not help-tune-percent '%%' -- "$fg" help tune
expect_not help-all-percent '%%' -- sh -c "for c in info gen compile run bench tune cache explore; do '$fg' help \$c; done"
exit $fail
