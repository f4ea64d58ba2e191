# zsh -f capture.zsh SCRIPT LINE: the matches zsh's completion system offers for LINE (its last
# word) once SCRIPT is loaded, one per line. An interactive zsh on a pseudo-terminal (zpty)
# runs compinit and SCRIPT, then gets LINE and a TAB; compadd is wrapped to print each match.
zmodload zsh/zpty || exit 2
zpty z zsh -f -i
zpty -w z "PROMPT='' RPROMPT=''"
zpty -w z 'autoload -U compinit && compinit -u -D'
zpty -w z "source ${(q)1}"
zpty -w z 'compadd () { local -a __m; builtin compadd -O __m "$@"; print -r -- "<HIT>"${^__m}"</HIT>"; builtin compadd "$@" }'
zpty -w z 'bindkey "^I" complete-word; zstyle ":completion:*" menu no'
# Says when the line editor is reading: keys typed before that meet the terminal's cooked mode,
# where Ctrl-U erases the line before zsh sees it.
zpty -w z 'zle-line-init() { print -rn -- "<Z""LE>" }; zle -N zle-line-init'
# Reads up to a marker the shell prints (the quotes keep the echoed command from matching it),
# keeping what came before it in $out.
until_marker() {
  local got
  zpty -r z got "*<$1>*" || return 1
  out+=$got
}
local out=''
zpty -w z "print -r -- '<REA''DY>'"
until_marker READY || exit 3
until_marker ZLE || exit 3
out=''
# The TAB completes; Ctrl-U then clears the line and the marker command ends the output.
zpty -w -n z "$2"$'\t'$'\x15'"print -r -- '<DO''NE>'"$'\n'
until_marker DONE || exit 3
print -rl -- ${(u)${(M)${(s:<HIT>:)out}:#*</HIT>*}%%</HIT>*}
zpty -d z
