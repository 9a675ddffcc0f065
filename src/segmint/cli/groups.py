"""Command groups shared by several modules; each module adds its commands to these."""

from __future__ import annotations

import click


@click.group()
def segments() -> None:
    """Segments: validate, list, show, SQL, overlap."""


@click.group()
def rules() -> None:
    """The rule language."""


@click.group()
def traits() -> None:
    """Computed traits."""


@click.group()
def profile() -> None:
    """One profile: traits, segments and why."""


@click.group()
def template() -> None:
    """Email templates: lint and preview."""


@click.group()
def campaign() -> None:
    """Campaigns: send, with consent enforced."""


@click.group()
def keys() -> None:
    """API keys: create, list, revoke."""


@click.group()
def quarantine() -> None:
    """Input that failed validation: list, show, replay and purge."""


@click.group()
def webhooks() -> None:
    """Outgoing membership webhooks."""


GROUPS = (segments, rules, traits, profile, template, campaign, keys, quarantine, webhooks)


def register(cli: click.Group) -> None:
    """Add the shared groups to the top-level command."""
    for group in GROUPS:
        cli.add_command(group)
