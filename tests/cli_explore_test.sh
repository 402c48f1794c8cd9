#!/usr/bin/env bash
# flashgen explore without a GPU (--no-gpu): statistics, thumbnail, PNG, the
# built-in list, a sandboxed user file refused with file:line, usage errors.
set -u
fg="$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
expect() { # expect NAME EXIT_STATUS PATTERN -- command...
  local name=$1 want=$2 pat=$3; shift 4
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" != "$want" ] || ! grep -qE -- "$pat" <<<"$out"; then
    echo "FAIL $name: exit $rc (want $want), output did not match /$pat/:"; echo "$out" | head -20; fail=1
  else echo "ok   $name"; fi
}
expect window 0 'density 24.80%' -- "$fg" explore sliding_window --param window=1000 --seqlen 8192 --no-gpu --png "$tmp/w.png"
expect png-signature 0 'PNG image|^89504e47' -- sh -c "file '$tmp/w.png' 2>/dev/null | grep -q PNG && echo 'PNG image' || od -An -tx1 -N4 '$tmp/w.png' | tr -d ' '"
expect document 0 'per row:   min 2, mean 40.03, max 63' -- "$fg" explore document --param lengths=1000,3000,96 --seqlen 4096 --block 64 --no-gpu --verify
expect verify 0 'verify:    every full block' -- "$fg" explore 'intersection(document{lengths={500,1500}}, causal{})' --seqlen 2048 --block 64 --block-k 32 --no-gpu --verify
expect bigbird 0 'mask:      \(\(abs' -- "$fg" explore bigbird --seqlen 4096 --no-gpu
expect list 0 'sliding_window' -- "$fg" explore --list
printf 'local x = 1\nos.execute("true")\n' > "$tmp/evil.lua"
expect sandbox 1 'evil.lua:2: .*global .os.' -- "$fg" explore "$tmp/evil.lua" --no-gpu
expect unknown-param 1 "unknown parameter 'widow'" -- "$fg" explore sliding_window --param widow=3 --no-gpu
expect bad-param 2 'NAME=VALUE' -- "$fg" explore sliding_window --param 3 --no-gpu
expect bad-block 1 'multiples of 64' -- "$fg" explore causal --block 96 --no-gpu
# a picture wider than the PNG writer allows: a clear error, and no file
expect png-too-wide 1 'larger than 32768 x 32768 pixels' -- "$fg" explore '{mask="kv_idx <= q_idx"}' --no-gpu --seqlen 600000 --block 65536 --block-k 16 --png "$tmp/wide.png"
if [ -e "$tmp/wide.png" ]; then echo "FAIL png-too-wide: $tmp/wide.png was created"; fail=1; else echo "ok   png-too-wide leaves no file"; fi
expect png-unwritable 1 'nonexistent/w.png: No such file or directory' -- "$fg" explore causal --seqlen 1024 --no-gpu --png "$tmp/nonexistent/w.png"
expect block-zero 2 '--block and --block-k must be positive' -- "$fg" explore causal --block 0 --no-gpu
expect block-k-zero 2 'got 128 and 0' -- "$fg" explore causal --block-k 0 --no-gpu
expect help 0 'usage: flashgen explore PATTERN' -- "$fg" explore --help
exit $fail
