"""Wheel build hook: the collection's single files beside its folders (pyproject.toml maps the folders).

hatchling's `sources` maps folders only, and a `force-include` in pyproject.toml also lands in editable installs,
where a collection holding nothing but these files would shadow nothing useful and confuse `ansible-galaxy
collection list`; so they are added here, to regular wheels only.
"""

from __future__ import annotations

from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

COLLECTION = "ansible_collections/testbed/pipeline"
FILES = ("galaxy.yml", "ansible.cfg", "requirements.yml", "README.md")


class CollectionFilesHook(BuildHookInterface):  # type: ignore[misc]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "standard":
            build_data["force_include"].update({name: f"{COLLECTION}/{name}" for name in FILES})
