"""Turn pydantic validation errors into one-line messages that name each dotted key."""

from __future__ import annotations

import re

from pydantic import ValidationError


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    """One part per problem joined with '; ', each naming its dotted key."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        key = ".".join(p for p in (prefix, loc) if p)
        if err["type"] == "value_error":
            # our validators word each problem as "subkey: text" (joined by "; ") or plain text
            for part in str(err.get("ctx", {}).get("error", err["msg"])).split("; "):
                if _SUBKEY.match(part):
                    parts.append(f"{key}.{part}" if key else part)
                else:
                    parts.append(f"{key}: {part}" if key else part)
            continue
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        else:
            msg = err["msg"]
            if "input" in err and not isinstance(err["input"], (dict, list)):
                msg += f" (got {err['input']!r})"
        parts.append(f"{key}: {msg}" if key else msg)
    return "; ".join(parts)


_SUBKEY = re.compile(r"^[A-Za-z_][\w\[\]\.-]*: ")
