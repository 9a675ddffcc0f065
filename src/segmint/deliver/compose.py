"""The composer: one recipient's complete message, with signed links, from a template.

It compiles the campaign's template once (through :mod:`segmint.personalize`) and, per
recipient, renders it with:

- every http(s) link rewritten to a signed click redirect;
- an open pixel;
- ``List-Unsubscribe`` / ``List-Unsubscribe-Post`` headers (RFC 8058) pointing at the signed
  one-click unsubscribe URL;
- template variables ``unsubscribe_url``, ``preferences_url`` and ``campaign``.
"""

from __future__ import annotations

from segmint.clock import Clock
from segmint.config.model import CampaignDef
from segmint.deliver.links import LinkSigner
from segmint.measure.experiments import variants_of
from segmint.personalize import CompiledTemplate, Renderer
from segmint.profiles import Profile
from segmint.workspace import Workspace


class TemplateComposer:
    """Builds messages for one campaign.

    Args:
        workspace: The workspace (templates and definitions).
        name: The campaign's name.
        campaign: Its definition (template, sender, topic, subject).
        signer: Signs the tracking and unsubscribe links.
        clock: Dates the messages.

    Raises:
        TemplateError: If the template is missing or invalid (before anything is sent).
    """

    def __init__(
        self,
        workspace: Workspace,
        name: str,
        campaign: CampaignDef,
        signer: LinkSigner,
        clock: Clock,
    ) -> None:
        self.name = name
        self.campaign = campaign
        self.signer = signer
        self.clock = clock
        renderer = Renderer(workspace.templates_dir, workspace.definition)
        self.template: CompiledTemplate = renderer.compile(
            campaign.template, subject=campaign.subject
        )
        # an experiment's arms: each its own subject and/or template, compiled up front
        self.arm_templates: dict[str, str] = {
            v.name: v.template for v in variants_of(workspace.definition, name) if v.template
        }
        self.variants: dict[str, CompiledTemplate] = {
            v.name: renderer.compile(
                v.template or campaign.template, subject=v.subject or campaign.subject
            )  # fmt: skip
            for v in variants_of(workspace.definition, name)
            if not v.holdout and (v.template or v.subject)
        }

    def template_of(self, variant: str | None) -> str:
        """The name of the template ``variant`` (an experiment arm, or none) is sent."""
        return self.arm_templates.get(variant or "", self.campaign.template)

    def __call__(
        self,
        profile: Profile,
        *,
        to: str,
        message_id: str,
        variant: str | None = None,
        campaign: str | None = None,
    ) -> bytes:
        """Render and assemble the message for ``profile`` (``variant``: its arm, if any).

        ``campaign``: the name its links and engagement carry, when not the composer's (a
        journey step's ledger campaign, one per entry, shares one composer).

        Raises:
            TemplateRenderError: If this recipient's message cannot be built.
        """
        pid = profile.profile_id
        signer = self.signer
        name = campaign or self.name
        unsubscribe = signer.unsubscribe_url(name, pid, self.campaign.topic)
        template = self.variants.get(variant or "", self.template)
        email = template.render(
            profile,
            sender=self.campaign.sender,
            to=to,
            message_id=message_id,
            extra={
                "unsubscribe_url": unsubscribe,
                "preferences_url": signer.preferences_url(pid),
                "campaign": name,
            },
            link_rewriter=lambda url: signer.click_url(name, pid, message_id, url),
            open_pixel_url=signer.open_url(name, pid, message_id),
            list_unsubscribe=(unsubscribe, ""),
            date=self.clock.now(),
        )
        return email.as_bytes()
