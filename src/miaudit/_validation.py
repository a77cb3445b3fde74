"""Turn pydantic validation errors into one-line messages that name each dotted key."""

from __future__ import annotations

import difflib
import re
import typing

from pydantic import BaseModel, ValidationError


def format_validation_error(exc: ValidationError, prefix: str = "", model: type[BaseModel] | None = None) -> str:
    """One part per problem joined with '; ', each naming its dotted key.

    With the validated ``model`` class, an unknown key gets the closest known one as a hint
    (``train.epoch: unknown key (did you mean train.epochs?)``).
    """
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
            close = _closest_key(model, err["loc"]) if model is not None else None
            if close is not None:
                msg += f" (did you mean {'.'.join(p for p in (prefix, close) if p)}?)"
        else:
            msg = err["msg"]
            if "input" in err and not isinstance(err["input"], (dict, list)):
                msg += f" (got {err['input']!r})"
        parts.append(f"{key}: {msg}" if key else msg)
    return "; ".join(parts)


_SUBKEY = re.compile(r"^[A-Za-z_][\w\[\]\.-]*: ")


def _closest_key(model: type[BaseModel], loc: tuple) -> str | None:
    """The dotted key nearest to the unknown last part of ``loc``, among the fields of its section."""
    section: type[BaseModel] | None = model
    for part in loc[:-1]:
        if isinstance(part, int):  # an item of a list of sections
            continue
        field = section.model_fields.get(str(part)) if section is not None else None
        if field is None:
            return None
        section = next((a for a in (field.annotation, *typing.get_args(field.annotation))
                        if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if section is None:
            return None
    names = [*section.model_fields] if section is not None else []
    match = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
    return ".".join([*(str(p) for p in loc[:-1]), match[0]]) if match else None
