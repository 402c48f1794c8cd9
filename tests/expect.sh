# expect.sh: sourced by the CLI test scripts.
#   expect NAME EXIT_STATUS PATTERN -- command...
# runs the command, checks its exit status and that its output (stdout and
# stderr) matches the extended regular expression PATTERN; prints ok/FAIL
# and sets fail=1 on a mismatch.
fail=0
expect() {
  local name=$1 want=$2 pat=$3; shift 4
  out=$("$@" 2>&1); rc=$?
  if [ "$rc" != "$want" ] || ! grep -qE -- "$pat" <<<"$out"; then
    echo "FAIL $name: exit $rc (want $want), output did not match /$pat/:"; echo "$out" | head -20; fail=1
  else echo "ok   $name"; fi
}
# expect_not NAME PATTERN -- command...: the output must not match PATTERN
expect_not() {
  local name=$1 pat=$2; shift 3
  out=$("$@" 2>&1)
  if grep -qE -- "$pat" <<<"$out"; then
    echo "FAIL $name: output matched /$pat/:"; grep -E -- "$pat" <<<"$out" | head -5; fail=1
  else echo "ok   $name"; fi
}
