"""Read the declarative Jenkinsfile statically: blocks, parameters, `sh` steps, the CLI argument mapping."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
JENKINSFILE = REPO_ROOT / "Jenkinsfile"
CLI_PATH = ".venv/bin/mlstack"

_QUOTES = ('"""', "'''", '"', "'")


def strip_comments(text: str) -> str:
    """Drop `//` and `/* */` comments, leaving string literals (e.g. `http://...`) intact."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        quote = next((q for q in _QUOTES if text.startswith(q, i)), None)
        if quote:
            end = _string_end(text, i, quote)
            out.append(text[i:end])
            i = end
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def _string_end(text: str, start: int, quote: str) -> int:
    """Index just past the string literal opening at `start` (backslash escapes honoured)."""
    i = start + len(quote)
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(quote, i):
            return i + len(quote)
        i += 1
    raise ValueError(f"unterminated string literal at offset {start}")


def matching_brace(text: str, open_at: int) -> int:
    """Index of the `}` closing the `{` at `open_at`, skipping braces inside string literals."""
    depth = 0
    i = open_at
    while i < len(text):
        quote = next((q for q in _QUOTES if text.startswith(q, i)), None)
        if quote:
            i = _string_end(text, i, quote)
            continue
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unbalanced brace at offset {open_at}")


def blocks(text: str, name: str) -> list[str]:
    """Bodies of every `name { ... }` block (e.g. `post`, `when`, `parameters`), outermost first."""
    found = []
    for match in re.finditer(rf"\b{re.escape(name)}\s*\{{", text):
        open_at = match.end() - 1
        found.append(text[open_at + 1 : matching_brace(text, open_at)])
    return found


def without_blocks(text: str, name: str) -> str:
    """`text` with every `name { ... }` block cut out."""
    while match := re.search(rf"\b{re.escape(name)}\s*\{{", text):
        close = matching_brace(text, match.end() - 1)
        text = text[: match.start()] + text[close + 1 :]
    return text


@dataclass(frozen=True)
class Parameter:
    """One entry of the `parameters` directive."""

    kind: str  # string | choice | booleanParam
    name: str
    default: str | bool
    choices: tuple[str, ...] = ()
    description: str = ""


_PARAM = re.compile(
    r"\b(string|choice|booleanParam)\((.*?)\)\s*(?=\n\s*(?:string|choice|booleanParam)\(|\s*$)", re.S
)


def parameters(text: str) -> list[Parameter]:
    """The declared build parameters, in order."""
    (body,) = blocks(text, "parameters")
    params = []
    for kind, args in _PARAM.findall(body.strip() + "\n"):
        name = re.search(r"name:\s*'([^']+)'", args)
        description = re.search(r"description:\s*'([^']*)'", args)
        if not name:
            raise ValueError(f"parameter without a name: {args!r}")
        if kind == "choice":
            listed = re.search(r"choices:\s*\[([^\]]*)\]", args)
            choices = tuple(re.findall(r"'([^']*)'", listed.group(1))) if listed else ()
            text = description.group(1) if description else ""
            params.append(Parameter(kind, name.group(1), choices[0] if choices else "", choices, text))
            continue
        raw = re.search(r"defaultValue:\s*('([^']*)'|true|false)", args)
        if not raw:
            raise ValueError(f"parameter {name.group(1)} has no defaultValue")
        default: str | bool = raw.group(2) if raw.group(2) is not None else raw.group(1) == "true"
        params.append(
            Parameter(kind, name.group(1), default, (), description.group(1) if description else "")
        )
    return params


def environment(text: str) -> dict[str, str]:
    """The pipeline-level `environment` block: variable name -> raw Groovy value (string literal body)."""
    body = blocks(text, "environment")[0]
    values: dict[str, str] = {}
    for match in re.finditer(r"^\s*([A-Z_][A-Z0-9_]*)\s*=\s*", body, re.M):
        start = match.end()
        quote = next(q for q in _QUOTES if body.startswith(q, start))
        values[match.group(1)] = body[start + len(quote) : _string_end(body, start, quote) - len(quote)]
    return values


def sh_steps(text: str) -> list[str]:
    """Every single-quoted `sh '...'` script, in file order."""
    return re.findall(r"\bsh\s+'([^']*)'", text)


def stage_commands(text: str) -> list[str]:
    """The `sh` scripts of the stages proper (not of `post` blocks), in file order."""
    stages_body = blocks(text, "stages")[0]  # the outermost: the pipeline's
    return sh_steps(without_blocks(stages_body, "post"))


def stage_sequence(commands: list[str]) -> list[str]:
    """The pipeline stage names the `mlstack stage A B ...` commands run, flattened in order."""
    names: list[str] = []
    for command in commands:
        words = command.split()
        if words[:2] == [CLI_PATH, "stage"]:
            names.extend(w for w in words[2:] if not w.startswith(("-", "$")))
    return names


_TERNARY = re.compile(r"\$\{params\.(\w+)\s*\?\s*'([^']*)'\s*:\s*'([^']*)'\}")
_PARAM_REF = re.compile(r"\$\{params\.(\w+)\}")
_ENV_REF = re.compile(r"\$\{(?:env\.)?(\w+)\}")


def render(template: str, params: dict[str, str | bool], env: dict[str, str]) -> str:
    """Evaluate the few GString forms the environment block may use; anything else is an error.

    Allowed: `${params.X}`, `${params.FLAG ? 'a' : 'b'}`, `${env.X}` / `${X}` (earlier variables).
    """
    text = _TERNARY.sub(lambda m: m.group(2) if params[m.group(1)] else m.group(3), template)
    text = _PARAM_REF.sub(lambda m: str(params[m.group(1)]), text)
    text = _ENV_REF.sub(lambda m: env[m.group(1)], text)
    if "${" in text:
        raise ValueError(f"unsupported Groovy expression left in {text!r}")
    return text


def flag_mapping(template: str) -> dict[str, list[str]]:
    """Parameter name -> the CLI flags it turns into, read from an argument template."""
    mapping: dict[str, list[str]] = {}
    for name, on, off in _TERNARY.findall(template):
        mapping.setdefault(name, []).extend([on, off])
    for match in re.finditer(r"(--[\w-]+)=\$\{params\.(\w+)\}", template):
        mapping.setdefault(match.group(2), []).append(match.group(1))
    for match in re.finditer(r"(--[\w.-]+=[\w.]+=)\$\{params\.(\w+)\}", template):  # --set=key=${params.X}
        mapping.setdefault(match.group(2), []).append(match.group(1))
    return mapping
