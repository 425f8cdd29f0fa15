#!/usr/bin/env bash
# The mproc command from outside: --help, --version, cpus, bad usage (exit 255), and the
# argument and replacement-string parser of `mproc run` (mostly through --dry-run, which
# starts nothing), compared with GNU parallel where it is installed.
source "$(dirname "$0")/lib/cli.bash"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- front door -----------------------------------------------------------------------
"$M" --help | grep -q '^usage: mproc' || fail "--help"
expect_eq "--help status" 0 "$(status "$M" --help)"
"$M" --version | grep -Eq '^mproc [0-9]+\.[0-9]+' || fail "--version"
"$M" run --help | grep -q -- '--joblog' || fail "run --help"

# Bad usage: one error line, then the usage, on stderr; nothing on stdout; exit 255.
for bad in "frobnicate" "--frobnicate" "run --frobnicate echo" "run -j" "run -j abc echo" \
    "run -j 5x echo" "run --timeout -1 echo" "run --timeout nan echo" "run --halt now,fail=x echo" \
    "run --halt later,fail=1 echo" "run --retries -2 echo" "cpus --frobnicate" "run echo ::::" \
    "run --dry-run=1 echo"; do
    # shellcheck disable=SC2086
    "$M" $bad >"$tmp/out" 2>"$tmp/err" </dev/null
    rc=$?
    expect_eq "'$bad' status" 255 "$rc"
    [ -s "$tmp/out" ] && fail "'$bad' wrote to stdout"
    head -n 1 "$tmp/err" | grep -q '^mproc: ' || fail "'$bad' first line: $(head -n 1 "$tmp/err")"
    sed -n 2p "$tmp/err" | grep -q '^usage: mproc' || fail "'$bad' no usage after the error"
done
expect_eq "no command" 255 "$(status "$M")"
expect_eq "unreadable :::: file" 255 "$(status "$M" run echo :::: "$tmp/missing")"

# ---- cpus -----------------------------------------------------------------------------
out=$("$M" cpus) || fail "cpus status"
logical=$(sed -n 's/^logical: \([0-9]*\)$/\1/p' <<<"$out")
physical=$(sed -n 's/^physical: \([0-9]*\)$/\1/p' <<<"$out")
usable=$(sed -n 's/^usable: \([0-9]*\)$/\1/p' <<<"$out")
[ -n "$logical" ] && [ -n "$physical" ] && [ -n "$usable" ] || fail "cpus labels: $out"
expect_eq "cpus logical" "$(getconf _NPROCESSORS_ONLN)" "$logical"
[ "${usable:-0}" -ge 1 ] && [ "${usable:-0}" -le "${logical:-0}" ] || fail "cpus usable $usable"
[ "${physical:-0}" -ge 1 ] && [ "${physical:-0}" -le "${logical:-0}" ] || fail "cpus physical"
json=$("$M" cpus --json)
expect_eq "cpus --json" "{\"logical\": $logical, \"physical\": $physical, \"usable\": $usable}" "$json"
if command -v taskset >/dev/null && taskset -c 0 true 2>/dev/null; then
    expect_eq "cpus under taskset -c 0" "usable: 1" "$(taskset -c 0 "$M" cpus | grep usable)"
fi

# ---- argument sources (dry run: nothing starts) -----------------------------------------
expect_eq "cartesian product" "$(printf 'echo a 1\necho a 2\necho b 1\necho b 2')" \
    "$("$M" run --dry-run echo ::: a b ::: 1 2)"
expect_eq "positional" "$(printf '1-a\n2-a\n1-b\n2-b')" \
    "$("$M" run -k echo {2}-{1} ::: a b ::: 1 2)"
expect_eq "{#} {%}" "$(printf 'echo 1 1 x\necho 2 2 y\necho 3 1 z')" \
    "$("$M" run -j2 --dry-run echo {#} {%} {} ::: x y z)"
printf 'l1\nl 2\n' >"$tmp/args"
expect_eq ":::: file" "$(printf "echo l1 A\necho l1 B\necho 'l 2' A\necho 'l 2' B")" \
    "$("$M" run --dry-run echo :::: "$tmp/args" ::: A B)"
expect_eq "-a file" "$(printf "echo l1\necho 'l 2'")" "$("$M" run --dry-run -a "$tmp/args" echo)"
expect_eq "stdin" "$(printf "echo x\necho ''\necho 'y z'")" \
    "$(printf 'x\n\ny z\n' | "$M" run --dry-run echo)"
expect_eq "stdin, no final newline" "$(printf "echo x\necho y")" \
    "$(printf 'x\ny' | "$M" run --dry-run echo)"
expect_eq "-0" "$(printf "echo 'a\nb'\necho c")" "$(printf 'a\nb\0c\0' | "$M" run -0 --dry-run echo)"
expect_eq "empty product" "" "$("$M" run --dry-run echo ::: a b ::: )"
expect_eq "no input" "" "$("$M" run --dry-run echo </dev/null)"
expect_eq "args are the command" "$(printf '1\n2')" "$("$M" run -k ::: 'echo 1' 'echo 2')"
expect_eq "options after the command are its own" "x" "$("$M" run echo -n ::: x | od -An -c | tr -d ' ')"
expect_eq "-- ends the options" "-k" "$("$M" run -- echo ::: -k)"
expect_eq "--jobs=2 -kj1" "$(printf 'a\nb')" "$("$M" run --jobs=2 -kj1 echo ::: a b)"

# Replacement strings on odd paths, and quoting: values reach the command unchanged.
odd=('a b/c.d.tar' "q'\"s" '$HOME' '-leading' '*' '`id`' ';ls' ' sp ' 'a&b|c' '~' '#x' 'é{}'
    'a/' '/' 'a//b' '.x.y' 'a.b/' '' 'x.')
want=$(for a in "${odd[@]}"; do printf '%s|' "$a"; done)
expect_eq "values unchanged" "$want" "$("$M" run -k printf "'%s|'" ::: "${odd[@]}")"
expect_eq "{.} {/} {//} {/.}" "a b/c.d|c.d.tar|a b|c.d|" \
    "$("$M" run printf "'%s|'" {.} {/} {//} {/.} ::: 'a b/c.d.tar')"
if command -v parallel >/dev/null; then
    export PARALLEL_SHELL=/bin/sh # GNU parallel uses $SHELL; mproc uses /bin/sh
    odd+=($'x\ny' $'z\n' '\t')
    for t in 'echo {}' 'echo {.} {/} {//} {/.}' 'echo' 'printf "%s|" {} {}' 'echo x{}y' \
        'echo {1/} {2.}'; do
        want=$(parallel --will-cite -k "$t" ::: "${odd[@]}" ::: 'p/q.r' 2>&1)
        got=$("$M" run -k "$t" ::: "${odd[@]}" ::: 'p/q.r' 2>&1)
        expect_eq "as GNU parallel: $t" "$want" "$got"
    done
    printf '%s\0' "${odd[@]}" >"$tmp/nul"
    expect_eq "as GNU parallel: -0" "$(parallel --will-cite -0 -k 'echo {} {//}' <"$tmp/nul")" \
        "$("$M" run -0 -k 'echo {} {//}' <"$tmp/nul")"
else
    echo "cli_basic: GNU parallel not installed, comparisons skipped"
fi

# Bounded memory: a million input lines stream through (no job window grows).
if [ "${MPROC_SANITIZE:-OFF}" != ON ] && [ -x /usr/bin/time ]; then
    peak=$( { seq 1000000 | /usr/bin/time -f '%M' "$M" run --dry-run echo >/dev/null; } 2>&1 | tail -n 1)
    [ "${peak:-999999}" -lt 16384 ] || fail "1M lines --dry-run peak RSS ${peak} KiB"
fi

finish
