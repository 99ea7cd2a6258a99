"""Which options each sandboxed program accepts: an allow-list per program, and the parser that holds
a command's arguments to it.

:func:`~agentadapter.agents.tools.sandbox.check_command` calls :func:`check_arguments` once the
program itself is allowed. Options are parsed the way GNU ``getopt_long`` parses them (short
options bundled, ``-ovalue`` glued, ``--long=value`` and ``--long value``, options anywhere until
``--``), so what is checked is exactly what the program will see. Each program lists the options it
accepts (:class:`ProgramOptions`), and for each whether it takes a value and whether that value is
a path. Path values, and positional arguments of programs whose operands are files, go to the
caller's path check (inside the working directory, symlinks resolved). An option not on the list
is refused, so options that read file lists (``--files0-from``, ``md5sum --check``) or run other
programs (``sort --compress-program``, ``diff --paginate``) are refused by not being listed; so are
abbreviated long options, which the real program might resolve to an option that is not listed.

A program allowed without an entry accepts no options at all; its operands are paths.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from agentadapter.agents.tools.errors import CommandRefused
from agentadapter.llm.errors import ConfigurationError

__all__ = ["DEFAULT_OPTIONS", "NO_OPTIONS", "ProgramOptions", "ValueKind", "check_arguments"]

ValueKind = Literal["flag", "value", "path", "optional"]
"""``flag``: no value; ``value``: a required plain value; ``path``: a required value that names a
file (checked like a path operand); ``optional``: a plain value given only glued (``-I[FMT]``,
``--color[=WHEN]``)."""

PathCheck = Callable[[str, str], None]
"""``check(path, argument)``: raise :class:`CommandRefused` when ``path`` (from ``argument``) leaves
the working directory."""

_SPEC_TOKEN = re.compile(r"^(?P<name>--?[A-Za-z0-9][A-Za-z0-9-]*)(?P<value>=|=PATH|\[=\])?$")
_SPEC_KINDS: dict[str | None, ValueKind] = {None: "flag", "=": "value", "=PATH": "path", "[=]": "optional"}
_INTEGER = re.compile(r"^-\d+$")
_NEGATIVE_NUMBER = re.compile(r"^-[\d.]")


@dataclass(frozen=True, slots=True)
class ProgramOptions:
    """The options one program accepts, and what its operands are."""

    short: Mapping[str, ValueKind] = field(default_factory=dict)
    """Single-letter options without the dash: ``{"n": "value", "l": "flag"}``."""
    long: Mapping[str, ValueKind] = field(default_factory=dict)
    """Long options without the dashes: ``{"lines": "value"}``. Only full names are accepted."""
    operands: Literal["paths", "plain"] = "paths"
    """``paths``: every positional argument names a file and is checked; ``plain``: they are text the
    program never opens (``echo``, ``tr``'s sets, ``date``'s format)."""
    numbers: Literal["none", "option", "operand"] = "none"
    """``-NUM`` arguments: ``option`` (``head -5``, ``grep -3``), ``operand`` (``seq -5 5``), or not
    special (then refused as an unknown option)."""
    options_first: bool = False
    """Options only before the first operand, as ``echo`` and ``printf`` parse them (only valid with
    plain operands: GNU programs otherwise find options anywhere)."""

    def __post_init__(self) -> None:
        if self.options_first and self.operands != "plain":
            raise ConfigurationError("ProgramOptions: options_first needs plain operands; a program that reads "
                                     "files finds options anywhere on its command line")
        for name, kind in [*self.short.items(), *self.long.items()]:
            if kind not in ("flag", "value", "path", "optional"):
                raise ConfigurationError(f"ProgramOptions: option {name!r} has the unknown value kind {kind!r}")
        for name in self.short:
            if len(name) != 1 or name == "-":
                raise ConfigurationError(f"ProgramOptions: short option {name!r} must be one character, no dash")

    @classmethod
    def parse(cls, spec: str, *, operands: Literal["paths", "plain"] = "paths",
              numbers: Literal["none", "option", "operand"] = "none", options_first: bool = False) -> ProgramOptions:
        """Options from a compact spec: ``"-n --number -e= --regexp= -f=PATH --file=PATH --color[=]"``.

        ``-x``: a flag; ``-x=``: takes a plain value; ``-x=PATH``: takes a path; ``--x[=]``: an
        optional value, glued only.
        """
        short: dict[str, ValueKind] = {}
        long: dict[str, ValueKind] = {}
        for token in spec.split():
            match = _SPEC_TOKEN.match(token)
            if match is None:
                raise ConfigurationError(
                    f"ProgramOptions: {token!r} is not an option spec; write -x, -x=, -x=PATH, --name, --name=, "
                    "--name=PATH or --name[=]"
                )
            name, value = match["name"], match["value"]
            kind = _SPEC_KINDS[value]
            if name.startswith("--"):
                long[name[2:]] = kind
            elif len(name) == 2:
                short[name[1]] = kind
            else:
                raise ConfigurationError(f"ProgramOptions: {token!r}: a short option is one letter (-x)")
        return cls(short, long, operands, numbers, options_first)

    def describe(self) -> str:
        """The accepted options, as the refusal lists them."""
        shown = [f"-{name}{_SHOWN_VALUE[kind]}" for name, kind in sorted(self.short.items(),
                                                                          key=lambda item: (item[0].lower(), item[0]))]
        shown += [f"--{name}{_SHOWN_VALUE[kind].replace(' ', '=')}" for name, kind in sorted(self.long.items())]
        if self.numbers == "option":
            shown.append("-NUM")
        return " ".join(shown) or "none"


_SHOWN_VALUE: dict[ValueKind, str] = {"flag": "", "value": " VALUE", "path": " PATH", "optional": "[=VALUE]"}

NO_OPTIONS = ProgramOptions()
"""What a program allowed without an entry accepts: no options; its operands are paths."""


def _refuse(message: str) -> CommandRefused:
    return CommandRefused(message, reason="option_not_allowed")


def _not_listed(program: str, option: str, argument: str, options: ProgramOptions) -> CommandRefused:
    where = "" if option == argument else f" (in {argument!r})"
    if options is NO_OPTIONS:
        return _refuse(f"the option {option!r}{where} is not allowed: {program!r} takes no options in this sandbox; "
                       "give it operands only")
    return _refuse(f"the option {option!r}{where} is not allowed for {program!r}; it accepts only: "
                   f"{options.describe()} (long options in full, not abbreviated)")


def check_arguments(program: str, arguments: Sequence[str], options: ProgramOptions, check_path: PathCheck) -> None:
    """Refuse (:class:`CommandRefused`) any option ``program`` does not accept, any malformed one, and
    any path it would open outside the working directory (through ``check_path``)."""
    index = 0
    options_done = False
    while index < len(arguments):
        argument = arguments[index]
        index += 1
        if options_done or argument == "-" or not argument.startswith("-") or (
                options.numbers == "operand" and _NEGATIVE_NUMBER.match(argument)):
            if options.options_first:
                options_done = True
            if options.operands == "paths":
                check_path(argument, argument)
            continue
        if argument == "--":
            options_done = True
            continue
        if options.numbers == "option" and _INTEGER.match(argument):
            continue
        if argument.startswith("--"):
            index = _check_long(program, arguments, index, options, check_path)
        else:
            index = _check_short(program, arguments, index, options, check_path)


def _check_long(program: str, arguments: Sequence[str], index: int, options: ProgramOptions,
                check_path: PathCheck) -> int:
    argument = arguments[index - 1]
    name, glued, value = argument[2:].partition("=")
    kind = options.long.get(name)
    option = f"--{name}"
    if kind is None:
        raise _not_listed(program, option, argument, options)
    if kind == "flag":
        if glued:
            raise _refuse(f"the option {option!r} of {program!r} takes no value (got {argument!r})")
        return index
    if kind == "optional":
        return index
    if not glued:
        if index >= len(arguments):
            raise _refuse(f"the option {option!r} of {program!r} needs a value; give one after it")
        value, index = arguments[index], index + 1
    if kind == "path":
        check_path(value, argument if glued else f"{argument} {value}")
    return index


def _check_short(program: str, arguments: Sequence[str], index: int, options: ProgramOptions,
                 check_path: PathCheck) -> int:
    argument = arguments[index - 1]
    position = 1
    while position < len(argument):
        letter = argument[position]
        position += 1
        kind = options.short.get(letter)
        option = f"-{letter}"
        if kind is None:
            raise _not_listed(program, option, argument, options)
        if kind == "flag":
            continue
        value = argument[position:]  # the rest of the bundle is the value
        if kind == "optional":
            return index
        shown = argument
        if not value:
            if index >= len(arguments):
                raise _refuse(f"the option {option!r} of {program!r} needs a value; give one after it")
            value, index = arguments[index], index + 1
            shown = f"{argument} {value}"
        if kind == "path":
            check_path(value, shown)
        return index
    return index


# ------------------------------------------------------------------------------------------ the lists

_GNU = " --help --version"
_SUMS = "-b --binary -t --text --tag -z --zero" + _GNU  # no -c/--check: it opens the files a list names


def _gnu(spec: str, *, operands: Literal["paths", "plain"] = "paths",
         numbers: Literal["none", "option", "operand"] = "none") -> ProgramOptions:
    return ProgramOptions.parse(spec + _GNU, operands=operands, numbers=numbers)


DEFAULT_OPTIONS: Mapping[str, ProgramOptions] = {
    "base64": _gnu("-d --decode -i --ignore-garbage -w= --wrap="),
    "basename": _gnu("-a --multiple -s= --suffix= -z --zero", operands="plain"),
    "cat": _gnu("-A --show-all -b --number-nonblank -e -E --show-ends -n --number -s --squeeze-blank -t -T "
                "--show-tabs -u -v --show-nonprinting"),
    "comm": _gnu("-1 -2 -3 --check-order --nocheck-order --output-delimiter= --total -z --zero-terminated"),
    # No -S/--suffix: a backup suffix holding '/' would name a path outside.
    "cp": _gnu("-a --archive --attributes-only --backup[=] -b --copy-contents -d -f --force -i --interactive -H "
               "-l --link -L --dereference -n --no-clobber -P --no-dereference -p --preserve[=] --no-preserve= "
               "--parents -R -r --recursive --reflink[=] --remove-destination --sparse= --strip-trailing-slashes "
               "-s --symbolic-link -t=PATH --target-directory=PATH -T --no-target-directory -u --update[=] "
               "-v --verbose -x --one-file-system --debug"),
    "cut": _gnu("-b= --bytes= -c= --characters= -d= --delimiter= -f= --fields= -n --complement -s --only-delimited "
                "--output-delimiter= -z --zero-terminated"),
    # No -s/--set (the clock).
    "date": _gnu("-d= --date= --debug -f=PATH --file=PATH -I[=] --iso-8601[=] --resolution -R --rfc-email "
                 "--rfc-3339= -r=PATH --reference=PATH -u --utc --universal", operands="plain"),
    # No -l/--paginate: it pipes the output through 'pr', another program.
    "diff": _gnu("--normal -q --brief -s --report-identical-files -c -C= --context[=] -u -U= --unified[=] -e --ed "
                 "-n --rcs -y --side-by-side -W= --width= --left-column --suppress-common-lines -p "
                 "--show-c-function -F= --show-function-line= --label= -t --expand-tabs -T --initial-tab "
                 "--tabsize= --suppress-blank-empty -r --recursive --no-dereference -N --new-file "
                 "--unidirectional-new-file --ignore-file-name-case --no-ignore-file-name-case -x= --exclude= "
                 "-X=PATH --exclude-from=PATH -S=PATH --starting-file=PATH --from-file=PATH --to-file=PATH -i "
                 "--ignore-case -E --ignore-tab-expansion -Z --ignore-trailing-space -b --ignore-space-change -w "
                 "--ignore-all-space -B --ignore-blank-lines -I= --ignore-matching-lines= -a --text "
                 "--strip-trailing-cr -D= --ifdef= --old-group-format= --new-group-format= "
                 "--unchanged-group-format= --changed-group-format= --line-format= --old-line-format= "
                 "--new-line-format= --unchanged-line-format= -d --minimal --horizon-lines= --speed-large-files "
                 "--color[=] --palette= -v"),
    "dirname": _gnu("-z --zero", operands="plain"),
    "echo": ProgramOptions.parse("-n -e -E", operands="plain", options_first=True),
    "false": ProgramOptions(operands="plain"),
    "fold": _gnu("-b --bytes -s --spaces -w= --width=", numbers="option"),
    "grep": _gnu("-E --extended-regexp -F --fixed-strings -G --basic-regexp -P --perl-regexp -e= --regexp= "
                 "-f=PATH --file=PATH -i -y --ignore-case --no-ignore-case -w --word-regexp -x --line-regexp "
                 "-z --null-data -s --no-messages -v --invert-match -V -m= --max-count= -b --byte-offset "
                 "-n --line-number --line-buffered -H --with-filename -h --no-filename --label= -o "
                 "--only-matching -q --quiet --silent --binary-files= -a --text -I -d= --directories= -D= "
                 "--devices= -r --recursive -R --dereference-recursive --include= --exclude= --exclude-from=PATH "
                 "--exclude-dir= -L --files-without-match -l --files-with-matches -c --count -T --initial-tab "
                 "-Z --null -B= --before-context= -A= --after-context= -C= --context= --group-separator= "
                 "--no-group-separator --color[=] --colour[=] -U --binary", numbers="option"),
    "head": _gnu("-c= --bytes= -n= --lines= -q --quiet --silent -v --verbose -z --zero-terminated",
                 numbers="option"),
    "ls": _gnu("-a --all -A --almost-all --author -b --escape --block-size= -B --ignore-backups -c -C --color[=] "
               "-d --directory -D --dired -f -F --classify[=] --file-type --format= --full-time -g "
               "--group-directories-first -G --no-group -h --human-readable --si -H --dereference-command-line "
               "--dereference-command-line-symlink-to-dir --hide= --hyperlink[=] --indicator-style= -i --inode "
               "-I= --ignore= -k --kibibytes -l -L --dereference -m -n --numeric-uid-gid -N --literal -o -p -q "
               "--hide-control-chars --show-control-chars -Q --quote-name --quoting-style= -r --reverse -R "
               "--recursive -s --size -S --sort= --time= --time-style= -t -T= --tabsize= -u -U -v -w= --width= "
               "-x -X -Z --context --zero -1"),
    "md5sum": ProgramOptions.parse(_SUMS),
    "mkdir": _gnu("-m= --mode= -p --parents -v --verbose"),
    "mv": _gnu("--backup[=] -b -f --force -i --interactive -n --no-clobber --strip-trailing-slashes "
               "-t=PATH --target-directory=PATH -T --no-target-directory -u --update[=] -v --verbose --debug"),
    "nl": _gnu("-b= --body-numbering= -d= --section-delimiter= -f= --footer-numbering= -h= --header-numbering= "
               "-i= --line-increment= -l= --join-blank-lines= -n= --number-format= -p --no-renumber -s= "
               "--number-separator= -v= --starting-line-number= -w= --number-width="),
    "paste": _gnu("-d= --delimiters= -s --serial -z --zero-terminated"),
    "printf": ProgramOptions.parse(_GNU, operands="plain", options_first=True),
    "pwd": _gnu("-L -P", operands="plain"),
    "rev": ProgramOptions.parse("-h --help -V --version"),
    "rm": _gnu("-f --force -i -I --interactive[=] --one-file-system --preserve-root[=] -r -R --recursive -d --dir "
               "-v --verbose"),
    "rmdir": _gnu("--ignore-fail-on-non-empty -p --parents -v --verbose"),
    "seq": _gnu("-f= --format= -s= --separator= -w --equal-width", operands="plain", numbers="operand"),
    "sha256sum": ProgramOptions.parse(_SUMS),
    # No --files0-from (a file list), --compress-program (runs a program).
    "sort": _gnu("-b --ignore-leading-blanks -d --dictionary-order -f --ignore-case -g --general-numeric-sort -i "
                 "--ignore-nonprinting -M --month-sort -h --human-numeric-sort -n --numeric-sort -R --random-sort "
                 "--random-source=PATH -r --reverse --sort= -V --version-sort --batch-size= -c -C --check[=] "
                 "--debug -k= --key= -m --merge -o=PATH --output=PATH -s --stable -S= --buffer-size= -t= "
                 "--field-separator= -T=PATH --temporary-directory=PATH --parallel= -u --unique -z "
                 "--zero-terminated"),
    "stat": _gnu("-L --dereference -f --file-system --cached= -c= --format= --printf= -t --terse"),
    "tac": _gnu("-b --before -r --regex -s= --separator="),
    "tail": _gnu("-c= --bytes= -f --follow[=] -F -n= --lines= --max-unchanged-stats= --pid= -q --quiet --silent "
                 "--retry -s= --sleep-interval= -v --verbose -z --zero-terminated", numbers="option"),
    "touch": _gnu("-a -c --no-create -d= --date= -f -h --no-dereference -m -r=PATH --reference=PATH -t= --time="),
    "tr": _gnu("-c -C --complement -d --delete -s --squeeze-repeats -t --truncate-set1", operands="plain"),
    "true": ProgramOptions(operands="plain"),
    "uniq": _gnu("-c --count -d --repeated -D --all-repeated[=] -f= --skip-fields= --group[=] -i --ignore-case "
                 "-s= --skip-chars= -u --unique -z --zero-terminated -w= --check-chars="),
    # No --files0-from: a file list.
    "wc": _gnu("-c --bytes -m --chars -l --lines -L --max-line-length -w --words --total="),
}
"""The options of the default programs (GNU coreutils, grep, diffutils; util-linux ``rev``)."""

