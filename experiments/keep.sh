# Sourced by the experiment scripts that write one result file per evaluation.
keep() {  # keep FILE COMMAND...: run COMMAND into FILE unless FILE holds a result already
  local file=$1; shift
  [ -s "$file" ] || { "$@" > "$file.tmp" && mv "$file.tmp" "$file"; }
}
