"""Workspace configuration: ``segmint.yaml`` loaded into typed definitions."""

from __future__ import annotations

from segmint.config.errors import ConfigError, ConfigErrors
from segmint.config.loader import load_workspace_def
from segmint.config.model import CampaignDef, SegmentDef, TraitDef, WorkspaceDef
from segmint.config.scaffold import scaffold

__all__ = [
    "CampaignDef",
    "ConfigError",
    "ConfigErrors",
    "SegmentDef",
    "TraitDef",
    "WorkspaceDef",
    "load_workspace_def",
    "scaffold",
]
