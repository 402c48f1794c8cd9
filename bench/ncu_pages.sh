# Sourced by bench/profile_fwd.sh and bench/profile_bwd.sh: where ncu is, and
# each report's details page and per-instruction SASS page (the CSV that
# bench/sass_profile.py reads) with its headline figures on stdout.
ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
# ncu_pages DIR NAME...: DIR/NAME.ncu-rep -> DIR/NAME.details.txt, DIR/NAME.sass.csv
ncu_pages() {
  local dir="$1" n
  shift
  for n in "$@"; do
    "$ncu" --import "$dir/$n.ncu-rep" --page details > "$dir/$n.details.txt" 2>&1
    "$ncu" --import "$dir/$n.ncu-rep" --page source --csv --print-source sass > "$dir/$n.sass.csv" 2>&1
    grep -E "Elapsed Cycles|Duration|Executed Instructions  |highest-utilized|Registers Per|Achieved Occ" "$dir/$n.details.txt" |
      sed "s/^/$n: /"
  done
}
# ncu_tar DIR FILE WHO: the pages and logs of DIR into FILE (a .tgz)
ncu_tar() {
  tar czf "$2" -C "$1" $(cd "$1" && ls *.txt *.csv *.log)
  echo "$3: $2"
}
