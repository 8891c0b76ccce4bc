"""vulcand/route expressions, as vulcand's proxy matches requests against frontends.

Supported matchers (the ones the platform writes, and their regexp variants)::

    Host("web.service.consul")    Host("<sub>.example.com")    HostRegexp("...")
    Path("/")                     Path("/users/<id>")          PathRegexp("/.*")
    Method("GET")                 MethodRegexp("GET|POST")
    Header("X-Key", "v")          HeaderRegexp("X-Key", "v.*")

joined by ``&&``. Strings are Go string literals (double-quoted with escapes, or back-quoted).
As in vulcand/route, ``*Regexp`` patterns match anywhere in the value (Go's ``MatchString``),
while ``Host`` and ``Path`` match the whole value, ``<name>`` standing for one label or segment.
Anything else is a :class:`RouteError`, which vulcand's API reports as a 500.
"""

import json
import re
from dataclasses import dataclass

_TOKEN = re.compile(r'\s*(?:(?P<name>[A-Za-z]+)|(?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)|(?P<punct>&&|[(),]))')
_PLACEHOLDER = re.compile(r"<[^>]*>")


class RouteError(ValueError):
    """An expression vulcand/route would not parse."""


def _template(pattern, segment):
    """Compile a Host/Path template: literal text with ``<name>`` placeholders."""
    parts = _PLACEHOLDER.split(pattern)
    return re.compile(segment.join(re.escape(part) for part in parts))


def _regexp(pattern):
    try:
        return re.compile(pattern)
    except re.error as err:
        raise RouteError(f"invalid regexp {pattern!r}: {err}") from err


def _host(request_host):
    """The Host header without its port, lowercased."""
    return request_host.rsplit(":", 1)[0].lower()


# matcher name -> (number of arguments, builder returning a predicate on a RouteRequest)
_MATCHERS = {
    "Host": (1, lambda p: (lambda r, t=_template(p.lower(), r"[^.]+"): bool(t.fullmatch(_host(r.host))))),
    "HostRegexp": (1, lambda p: (lambda r, x=_regexp(p): bool(x.search(_host(r.host))))),
    "Path": (1, lambda p: (lambda r, t=_template(p, r"[^/]+"): bool(t.fullmatch(r.path)))),
    "PathRegexp": (1, lambda p: (lambda r, x=_regexp(p): bool(x.search(r.path)))),
    "Method": (1, lambda m: (lambda r: r.method == m.upper())),
    "MethodRegexp": (1, lambda p: (lambda r, x=_regexp(p): bool(x.search(r.method)))),
    "Header": (2, lambda n, v: (lambda r: r.headers.get(n) == v)),
    "HeaderRegexp": (2, lambda n, p: (lambda r, x=_regexp(p): bool(x.search(r.headers.get(n) or "")))),
}


@dataclass(frozen=True)
class RouteRequest:
    """The parts of an HTTP request that routes look at; ``headers`` has a case-insensitive get."""

    method: str
    host: str
    path: str
    headers: object


class Route:
    """A parsed route expression: ``Route('Host("a") && Path("/")').matches(request)``."""

    def __init__(self, expression):
        self.expression = expression
        self._predicates = _parse(expression)

    def matches(self, request):
        return all(predicate(request) for predicate in self._predicates)

    @property
    def specificity(self):
        """Sort key preferring routes with more conditions, then longer ones, when several match."""
        return (len(self._predicates), len(self.expression))


def is_valid(expression):
    try:
        Route(expression)
    except RouteError:
        return False
    return True


def _tokens(expression):
    position, end = 0, len(expression.rstrip())
    while position < end:
        match = _TOKEN.match(expression, position)
        if match is None:
            raise RouteError(f"unexpected text at offset {position}: {expression[position:]!r}")
        position = match.end()
        yield match.lastgroup, match.group(match.lastgroup)


def _unquote(literal):
    if literal.startswith("`"):
        return literal[1:-1]
    try:
        return json.loads(literal)
    except ValueError as err:
        raise RouteError(f"invalid string literal {literal}") from err


def _parse(expression):
    tokens = list(_tokens(expression))
    if not tokens:
        raise RouteError("empty route expression")
    predicates, index = [], 0
    while True:
        kind, name = tokens[index] if index < len(tokens) else (None, None)
        if kind != "name" or name not in _MATCHERS:
            raise RouteError(f"expected a matcher ({', '.join(_MATCHERS)}), got {name!r}")
        arity, build = _MATCHERS[name]
        arguments, index = _arguments(tokens, index + 1)
        if len(arguments) != arity:
            raise RouteError(f"{name} takes {arity} argument(s), got {len(arguments)}")
        predicates.append(build(*arguments))
        if index == len(tokens):
            return predicates
        if tokens[index] != ("punct", "&&"):
            raise RouteError(f"expected '&&', got {tokens[index][1]!r}")
        index += 1


def _arguments(tokens, index):
    """Parse ``( "a" , "b" )`` from ``tokens[index]``; the strings and the index after ``)``."""

    def expect(kind, value=None):
        nonlocal index
        if index >= len(tokens) or tokens[index][0] != kind or value not in (None, tokens[index][1]):
            found = tokens[index][1] if index < len(tokens) else "end of expression"
            raise RouteError(f"expected {value or kind}, got {found!r}")
        index += 1
        return tokens[index - 1][1]

    expect("punct", "(")
    arguments = [_unquote(expect("string"))]
    while index < len(tokens) and tokens[index] == ("punct", ","):
        index += 1
        arguments.append(_unquote(expect("string")))
    expect("punct", ")")
    return arguments, index
