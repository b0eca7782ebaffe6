"""Turns shoal.h into a cffi cdef, so that no declaration or struct layout is copied by hand.

Why a small parser and not the C preprocessor (`cc -E -P`): the binding runs in ABI mode on
devices that often have no C compiler, and `cc -E` would also expand <stddef.h>/<stdint.h> into
compiler- and architecture-specific typedefs that pycparser (under cffi) cannot read, while cffi
already knows size_t, uint64_t and the rest. shoal.h is our own C99 header with a fixed, plain
style (STYLE.md section 5), so it needs only: comments stripped, `#include` dropped, the
conditionals on __cplusplus and SHOAL_BUILDING_LIBRARY evaluated (as a C compiler that is not
building the library would), the empty export macro SHOAL_API removed, and the object-like
integer #defines kept, evaluated when they are expressions (SHOAL_VERSION_NUMBER). Anything else
(a function-like macro, an #if this parser cannot evaluate) raises HeaderError instead of guessing,
and the tests check that every export in node/capi/exports.txt comes out declared.
"""

import ast
import operator
import re

__all__ = ["HeaderError", "parse_header"]


class HeaderError(Exception):
    """shoal.h uses a construct this parser does not handle; the message names the line."""


_INT_LITERAL = re.compile(r"^(0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]*$")
_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
    ast.BitOr: operator.or_,
    ast.BitAnd: operator.and_,
}


def _eval_int(expr, known):
    """Evaluates an integer constant expression over literals and known macros, or returns None."""
    text = re.sub(r"\b(0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]+\b", r"\1", expr.strip())
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return None

    def ev(node):
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name) and node.id in known:
            return known[node.id]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -ev(node.operand)
        raise ValueError(expr)

    try:
        return ev(tree)
    except ValueError:
        return None


def _condition(line, directive, defined, lineno):
    """The truth of an #if/#ifdef/#ifndef line under the macros defined so far."""
    if directive == "ifdef":
        return line.split()[1] in defined
    if directive == "ifndef":
        return line.split()[1] not in defined
    m = re.fullmatch(r"#\s*if\s+(!?)\s*defined\s*\(?\s*(\w+)\s*\)?", line)
    if m:
        return (m.group(2) in defined) != (m.group(1) == "!")
    raise HeaderError(f"shoal.h line {lineno}: cannot evaluate '{line}'")


def parse_header(text):
    """Returns (cdef, constants) for the text of shoal.h.

    cdef is C source for FFI.cdef(): every active declaration, plus `#define NAME <integer>` for
    every integer macro. constants maps each integer macro's name to its value.
    """
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    text = text.replace("\\\n", " ")
    defined = {}  # name -> replacement text, for every object-like macro seen in an active branch
    constants = {}
    stack = []  # per open conditional: [active now, any branch taken yet, parent active]
    code = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        active = all(frame[0] for frame in stack)
        if line.startswith("#"):
            line = "#" + line[1:].strip()
            directive = re.match(r"#\s*(\w*)", line).group(1)
            if directive in ("if", "ifdef", "ifndef"):
                value = _condition(line, directive, defined, lineno) if active else False
                stack.append([value, value, active])
            elif directive == "else":
                if not stack:
                    raise HeaderError(f"shoal.h line {lineno}: #else without #if")
                frame = stack[-1]
                frame[0] = frame[2] and not frame[1]
                frame[1] = True
            elif directive == "endif":
                if not stack:
                    raise HeaderError(f"shoal.h line {lineno}: #endif without #if")
                stack.pop()
            elif directive in ("elif", "elifdef", "elifndef"):
                raise HeaderError(f"shoal.h line {lineno}: #{directive} is not supported")
            elif not active:
                continue
            elif directive == "include":
                continue  # stddef.h and stdint.h: cffi knows their types
            elif directive == "define":
                m = re.fullmatch(r"#define\s+(\w+)(\(?)\s*(.*)", line)
                if not m or m.group(2):
                    raise HeaderError(f"shoal.h line {lineno}: function-like macro '{line}'")
                name, value = m.group(1), m.group(3).strip()
                defined[name] = value
                if value:
                    number = _eval_int(value, constants)
                    if number is None:
                        raise HeaderError(
                            f"shoal.h line {lineno}: macro {name} is neither an integer nor empty")
                    constants[name] = number
            elif directive == "undef":
                defined.pop(line.split()[1], None)
            else:
                raise HeaderError(f"shoal.h line {lineno}: unsupported directive '{line}'")
            continue
        if active and line:
            code.append(raw)
    if stack:
        raise HeaderError("shoal.h: unterminated #if")
    body = "\n".join(code)
    # Object-like macros used as tokens in declarations: SHOAL_API (empty for a consumer) and
    # integer constants in array sizes (kept: cffi evaluates them from the #defines below).
    for name, value in defined.items():
        if name not in constants:
            body = re.sub(rf"\b{name}\b", value, body)
    defines = "\n".join(f"#define {name} {value}" for name, value in constants.items())
    return defines + "\n" + body, constants
