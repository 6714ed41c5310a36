"""Rendering `{{ postgres.url }}`-style values from provisioned facts, in Jinja's sandbox: every problem
of every template named in one TestbedError."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from testbed.core.errors import TestbedError


def render(template: str, facts: Mapping[str, Any], where: str) -> str:
    """Render one `{{ postgres.url }}`-style value from the provisioned facts."""
    return render_all({where: template}, facts)[where]


def render_all(templates: Mapping[str, str], facts: Mapping[str, Any]) -> dict[str, str]:
    """Render each `where -> template`; every problem of every template is named in one TestbedError."""
    if not any("{" in template for template in templates.values()):
        return dict(templates)
    # Imported here: most values are plain, and start-up time is what `testbed up` is measured on.
    from jinja2 import ChainableUndefined, StrictUndefined  # noqa: PLC0415
    from jinja2.exceptions import TemplateError, TemplateSyntaxError  # noqa: PLC0415
    from jinja2.sandbox import SandboxedEnvironment  # noqa: PLC0415

    missing: list[str] = []

    class Recording(ChainableUndefined):
        """Notes each undefined name or attribute as it is printed, so one pass finds them all."""

        def __str__(self) -> str:
            missing.append(self._undefined_message)
            return ""

    jinja = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)
    survey = SandboxedEnvironment(autoescape=False, undefined=Recording)
    rendered: dict[str, str] = {}
    problems: list[str] = []
    for where, template in templates.items():
        if "{" not in template:
            rendered[where] = template
            continue
        try:
            # StrictUndefined stops at the first unknown name: a recording pass names them all first.
            missing.clear()
            survey.from_string(template).render(**facts)
            if missing:
                problems.append(f"'{where}': cannot render {template!r}: {', '.join(dict.fromkeys(missing))}")
                continue
            rendered[where] = jinja.from_string(template).render(**facts)
        except TemplateSyntaxError as exc:
            problems.append(f"'{where}': cannot render {template!r}: {exc.message} (template line {exc.lineno})")
        except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:  # `{{ port + "a" }}`
            problems.append(f"'{where}': cannot render {template!r}: {exc}")
    if problems:
        known = ", ".join(sorted(facts)) or "none"
        raise TestbedError(f"testbed.yml {'; '.join(problems)} (facts: {known})")
    return rendered
