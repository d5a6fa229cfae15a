"""The new-job form: its fields as a JobCreate body, and JobCreate's validation errors next to the fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

# Form field -> where it goes in a JobCreate body. Empty fields are left out, so JobCreate's defaults apply.
JOB_FIELDS: dict[str, tuple[str, ...]] = {
    "trials": ("search", "trials"),
    "method": ("search", "method"),
    "tradeoff": ("tradeoff",),
    "max_epsilon": ("max_epsilon",),
    "hidden": ("model", "hidden"),
    "epochs": ("model", "epochs"),
    "batch_size": ("model", "batch_size"),
    "learning_rate": ("model", "learning_rate"),
    "reference_models": ("reference_models",),
    "audit_reference_models": ("audit_reference_models",),
    "confirm_repeats": ("confirm_repeats",),
    "seed": ("seed",),
}
NO_LIMIT = "none"  # max_epsilon "none": no guarantee, as the CLI's --max-epsilon none


@dataclass
class FormErrors:
    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)

    def summary(self) -> str:
        return "; ".join([*self.general, *(f"{name}: {message}" for name, message in self.fields.items())])


def job_request(values: dict[str, str]) -> dict[str, Any]:
    """A JobCreate body from the form's strings; pydantic converts and checks them."""
    body: dict[str, Any] = {"dataset_id": values.get("dataset_id", "")}
    for name, path in JOB_FIELDS.items():
        text = values.get(name, "").strip()
        if not text:
            continue
        value: Any = text
        if name == "hidden":
            value = [part.strip() for part in text.split(",")]
        elif name == "max_epsilon" and text.lower() == NO_LIMIT:
            value = None
        target = body
        for part in path[:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = value
    if values.get("allow_weak_baseline"):
        body["allow_weak_baseline"] = True
    return body


_FIELD_OF_PATH = {path: name for name, path in JOB_FIELDS.items()}


def validation_errors(exc: ValidationError) -> FormErrors:
    """Each error under its form field (a list item's error under the list's field), else as a general one."""
    errors = FormErrors()
    for error in exc.errors():
        loc = tuple(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        name = next((_FIELD_OF_PATH[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in _FIELD_OF_PATH), None)
        if name is None:
            where = ".".join(loc)
            errors.general.append(f"{where}: {message}" if where else message)
        else:
            errors.fields.setdefault(name, message)
    return errors
