"""schemathesis hooks for tests/e2e/tests/schemathesis.rs (SCHEMATHESIS_HOOKS).

Spin hands a component its request headers as UTF-8 text and answers a
request whose header value is not UTF-8 with an empty 500 itself, before any
component runs (the project's host does the same). Python's HTTP stack sends
header strings as Latin-1, so a generated non-ASCII header value would be
such a request: the runtime's answer, not the app's. A header value with
non-ASCII characters is sent with each of them as a space, framed as
`x ... x` (HTTP trims a value's outer whitespace): it stays outside a
pattern of visible ASCII, so a negative case stays negative, and the request
reaches the app.
"""

import schemathesis


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if case.headers:
        for name, value in list(case.headers.items()):
            if isinstance(value, str) and not value.isascii():
                inner = "".join(c if c.isascii() else " " for c in value).strip()
                case.headers[name] = f"x {inner} x"
