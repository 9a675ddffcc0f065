"""Privacy commands: ``privacy enable|seal-existing|rotate-key|erase|export|enforce``, ``audit``.

Each calls :mod:`segmint.privacy` and only prints.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from segmint.cli.main import Context, pass_ctx
from segmint.cli.output import confirm, emit_json, emit_table, format_option
from segmint.cli.params import OUTPUT_FILE, as_of_option, refuse_later_than_now


def _recorded_now(as_of: datetime) -> None:
    """Refuse an ``--as-of`` later than now for a command the audit log records."""
    refuse_later_than_now(
        as_of, "--as-of",
        "what is done now would be recorded (in the audit log, on a receipt) as done then; "
        "leave --as-of out to record the current time",
    )  # fmt: skip


def _warn_of_unknown_events(ws: Any, events: list[str]) -> None:
    """Warn of retention event names no stored event has (a typo deletes nothing, ever)."""
    from segmint.cli.output import err_console
    from segmint.rules.vocabulary import event_warnings, workspace_vocabulary

    vocab = workspace_vocabulary(ws.definition, ws.store)
    for warning in event_warnings(events, vocab) if vocab is not None else []:
        err_console.print(f"[yellow]warning:[/yellow] privacy.retention: {warning}",
                          highlight=False, soft_wrap=True)  # fmt: skip


@click.group()
def privacy() -> None:
    """Personal data: encryption keys, erasure, export, retention."""


@click.group()
def audit() -> None:
    """The hash-chained audit log: verify, list."""


@privacy.command("enable")
@as_of_option("Record the key event at this instant")
@pass_ctx
def enable(ctx: Context, as_of: datetime) -> None:
    """Turn PII encryption on: write a master key file outside the store (git-ignored).

    New events are sealed from now on; what is already stored stays as it is until
    'segmint privacy seal-existing' seals it. Keep a copy of the key file somewhere safe:
    without it the sealed values cannot be read.
    """
    from segmint.privacy import audit as log
    from segmint.privacy.keys import generate_master_key, refuse_new_key, write_key_file

    _recorded_now(as_of)
    ws = ctx.workspace
    settings = ws.definition.privacy
    key_dir = ws.path / settings.key_dir
    refuse_new_key(key_dir, settings.key_env)
    path = write_key_file(key_dir, generate_master_key())
    _ignore(ws.path / ".gitignore", settings.key_dir.rstrip("/") + "/")
    log.append(ws.store, "privacy.key.enable", actor="cli", at=as_of, subject=None,
               details={"key_file": str(path.relative_to(ws.path))})  # fmt: skip
    click.echo(f"PII encryption on: master key written to {path} (mode 600, git-ignored)")
    click.echo(f"or set ${settings.key_env} instead of keeping the file; back it up safely")
    if ws.store.fetchall("SELECT count(*) FROM events")[0][0]:
        click.echo("events already stored are still in the clear: "
                   "run 'segmint privacy seal-existing' to seal them")  # fmt: skip


@privacy.command("seal-existing")
@click.option("--batch-size", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Rows per transaction.")  # fmt: skip
@as_of_option("Record the run at this instant")
@format_option
@pass_ctx
def seal_existing_cmd(ctx: Context, batch_size: int, as_of: datetime, fmt: str) -> None:
    """Seal the PII stored before encryption was enabled (events, traits, identities …).

    Safe to run again, and to stop: a second run seals only what is still in the clear,
    and the events pass resumes where it stopped.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from segmint.cli.output import err_console
    from segmint.privacy import audit as log
    from segmint.privacy.reseal import check_can_seal, seal_existing

    _recorded_now(as_of)
    ws = ctx.workspace
    check_can_seal(ws.privacy)  # before the progress bar
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    quiet = fmt == "json" or not err_console.is_terminal  # no bar (a blank line) in a log
    with Progress(*columns, console=err_console, transient=True, disable=quiet) as bar:
        tasks: dict[str, Any] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"sealing {name}", total=total)
            bar.update(tasks[name], completed=done, total=total)

        report = seal_existing(ws.privacy, batch=batch_size, progress=progress)
    log.append(ws.store, "privacy.seal_existing", actor="cli", at=as_of,
               details=report.as_dict())  # fmt: skip
    if fmt == "json":
        emit_json(report.as_dict())
        return
    emit_table("Sealed", ["table", "rows"], list(report.sealed.items()))
    if report.conflicts:
        click.echo(f"{report.conflicts} plaintext identities left: another profile already "
                   "has the same address hashed (merge them through intake)")  # fmt: skip
    if report.sealed.get("events"):
        click.echo("the real-time state and the wide profile_traits table are rebuilt "
                   "sealed at the next 'segmint traits refresh'")  # fmt: skip


def _ignore(gitignore: Path, line: str) -> None:
    text = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    if line not in text.splitlines():
        gitignore.write_text(text + ("" if text.endswith("\n") or not text else "\n") + line + "\n")


@privacy.command("rotate-key")
@click.option("--new-key-env", metavar="VAR",
              help="Take the new master key from this variable (else one is generated "
              "and written to the key file).")  # fmt: skip
@as_of_option("Record the key event at this instant")
@format_option
@pass_ctx
def rotate_key(ctx: Context, new_key_env: str | None, as_of: datetime, fmt: str) -> None:
    """Rewrap every profile key under a new master key (nothing in the store changes)."""
    import os

    from segmint.privacy import audit as log
    from segmint.privacy.errors import MasterKeyError
    from segmint.privacy.keys import decode_master_key, generate_master_key, rotate_to_key_file

    _recorded_now(as_of)
    ws = ctx.workspace
    ws.privacy.require_key("rewrapping the profile keys")  # sealed, but the key is not here
    keyring = ws.privacy.keyring
    if keyring is None:
        raise MasterKeyError("PII encryption is off: no master key to rotate "
                             "(turn it on with 'segmint privacy enable')")  # fmt: skip
    if new_key_env is None and keyring.origin.startswith("$"):
        raise click.UsageError(
            f"the master key comes from {keyring.origin}: put the new key in another "
            "variable and pass --new-key-env VAR (a key file would be ignored)"
        )
    if new_key_env is not None:
        if not os.environ.get(new_key_env):
            raise click.UsageError(f"${new_key_env} is not set")
        count = keyring.rotate(decode_master_key(os.environ[new_key_env], f"${new_key_env}"))
        where = f"${new_key_env}"
    else:
        key_dir = ws.path / ws.definition.privacy.key_dir
        count, path = rotate_to_key_file(keyring, key_dir, generate_master_key())
        where = str(path)
    log.append(ws.store, "privacy.key.rotate", actor="cli", at=as_of,
               details={"profile_keys": count})  # fmt: skip
    result = {"rewrapped": count, "new_key": where}
    if fmt == "json":
        emit_json(result)
        return
    click.echo(f"rewrapped {count} profile keys; the new master key is in {where}")
    if new_key_env is not None:
        click.echo(f"set ${ws.definition.privacy.key_env} to it before the next command")


@privacy.command("erase")
@click.argument("person")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--receipt", "receipt_file", type=OUTPUT_FILE,
              help="Also write the receipt to this file.")  # fmt: skip
@as_of_option("Record the erasure at this instant")
@format_option
@pass_ctx
def erase_cmd(
    ctx: Context, person: str, yes: bool, receipt_file: Path | None, as_of: datetime, fmt: str
) -> None:
    """Forget a person: destroy their key, delete or anonymise their data, keep a receipt.

    PERSON is a profile id, user id, anonymous id, email or KIND:VALUE; profiles merged into
    theirs go too. Aggregate counts (sends per campaign, segment entries) are kept without
    the person; a salted hash of their identifiers keeps a later import from re-adding them.
    Erasing someone already erased says when, names the receipt (--receipt writes it) and
    destroys any key an interrupted erasure left.
    """
    from segmint.privacy.erase import erase

    _recorded_now(as_of)
    ws = ctx.workspace
    ws.privacy.require_key("erasing a person")  # opening the vault finishes stopped erasures
    for receipt_id, keys in ws.finished_erasures.items():
        click.echo(f"finished the erasure {receipt_id}, stopped before its keys were "
                   f"destroyed: {keys} keys destroyed now", err=True)  # fmt: skip
    ref, what = _erase_target(ws, person, receipt_file)
    if not yes:
        confirm(f"erase {person} ({what}) for good?")
    root, receipt = erase(ws.privacy, ref, at=as_of)
    data = {"profile_id": root, **receipt.as_dict()}
    if receipt_file is not None:
        receipt_file.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if fmt == "json":
        emit_json(data)
        return
    shredded = "keys destroyed" if receipt.encrypted else "no keys (encryption off)"
    click.echo(f"erased {root or person}: {receipt.profiles} profiles, {shredded}: "
               f"{receipt.keys_destroyed}; receipt {receipt.receipt_id}")  # fmt: skip
    rows = [(t, n, "deleted") for t, n in receipt.deleted.items() if n] + [
        (t, n, "anonymised") for t, n in receipt.anonymised.items() if n
    ]
    emit_table("Rows", ["table", "rows", "what"], rows)


def _erase_target(ws: Any, person: str, receipt_file: Path | None) -> tuple[str, str]:
    """What to erase for PERSON (their profile id, or the id as typed) and how to name it.

    Someone erased already is an error naming the receipt; with ``--receipt`` that
    erasure's receipt is written (a run stopped half-way never wrote it).
    """
    from segmint.intake.errors import UnknownPersonError
    from segmint.privacy.erased import erasure_receipt, resolve_living, unlinked_identities

    if unlinked_identities(ws.privacy, person):
        return person, "no profile: only quarantined messages or an address's consent name them"
    try:
        pid = resolve_living(ws.privacy, person, field="PERSON")
    except UnknownPersonError:
        kept = None if receipt_file is None else erasure_receipt(ws.privacy, person)
        if receipt_file is not None and kept is not None:  # erased: its receipt, as asked
            receipt_file.write_text(json.dumps(kept, indent=2) + "\n", encoding="utf-8")
            click.echo(f"wrote {receipt_file}: the receipt of that erasure", err=True)
        raise
    return pid, f"profile {pid}"


@privacy.command("export")
@click.argument("person")
@click.option("--out", "out", type=OUTPUT_FILE,
              help="Write the JSON here (default: standard output).")  # fmt: skip
@as_of_option("Record the export at this instant")
@pass_ctx
def export_cmd(ctx: Context, person: str, out: Path | None, as_of: datetime) -> None:
    """Write everything held on a person as JSON, with a manifest of its sections."""
    from segmint.privacy.erased import resolve_living, unlinked_identities
    from segmint.privacy.export import export_person

    _recorded_now(as_of)
    ws = ctx.workspace
    ws.privacy.require_key("exporting a person")
    ref = person  # someone no profile holds (only quarantine names them): as typed
    if not unlinked_identities(ws.privacy, ref):
        ref = resolve_living(ws.privacy, person, field="PERSON")
    document = export_person(ws.privacy, ref, at=as_of)
    text = json.dumps(document, indent=2, default=str, ensure_ascii=False)
    if out is None:
        click.echo(text)
        return
    out.write_text(text + "\n", encoding="utf-8")
    sections = document["manifest"]["sections"]
    click.echo(f"wrote {out}: " + ", ".join(f"{k} {v['rows']}" for k, v in sections.items()))


@privacy.command("enforce")
@as_of_option("Apply the retention periods as of this instant")
@format_option
@pass_ctx
def enforce_cmd(ctx: Context, as_of: datetime, fmt: str) -> None:
    """Delete events older than their retention period (privacy.retention)."""
    from segmint.privacy.retention import enforce

    ws = ctx.workspace
    if not ws.definition.privacy.retention:
        raise click.UsageError(
            "the workspace sets no retention periods; add e.g. "
            "'privacy: {retention: {Page Viewed: 90d}}' to segmint.yaml"
        )
    refuse_later_than_now(
        as_of, "--as-of",
        "the events that reach their retention period only then would be deleted now; run it "
        "at that time (`segmint serve` runs it daily)",
    )  # fmt: skip
    deleted = enforce(ws.privacy, as_of=as_of)
    _warn_of_unknown_events(ws, list(deleted))
    if fmt == "json":
        emit_json({"as_of": as_of, "deleted": deleted})
        return
    emit_table(f"Retention at {as_of.isoformat()}", ["event", "deleted"],
               list(deleted.items()))  # fmt: skip
    if any(deleted.values()):
        click.echo("traits follow at the next 'segmint traits refresh'")


@audit.command("verify")
@format_option
@pass_ctx
def verify(ctx: Context, fmt: str) -> None:
    """Check the audit log's hash chain; exit 1 naming any edited, removed or moved entry."""
    from segmint.privacy import audit as log

    result = log.check(ctx.workspace.store)
    if fmt == "json":
        emit_json({"ok": result.ok, "entries": result.entries, "head": result.head,
                   "problems": result.problems})  # fmt: skip
    elif result.ok:
        click.echo(f"audit log intact: {result.entries} entries, head {result.head}")
        click.echo("(keep the head somewhere else to anchor it)")
    if not result.ok:
        if fmt != "json":
            for problem in result.problems:
                click.echo(f"TAMPERED: {problem}", err=True)
        raise SystemExit(1)


@audit.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="Show the newest this many entries (matching the filters).")  # fmt: skip
@click.option("--action", default=None, help="Only entries of this action (privacy.erase).")
@click.option("--actor", default=None, help="Only entries by this actor (cli, api:KEY_ID).")
@click.option("--subject", default=None,
              help="Only entries about this subject: a receipt id, or a person by any id "
              "(profile id, user id, email, KIND:VALUE; erased people too).")  # fmt: skip
@format_option
@pass_ctx
def list_entries(
    ctx: Context, limit: int, action: str | None, actor: str | None, subject: str | None,
    fmt: str,
) -> None:  # fmt: skip
    """List the latest audit entries, oldest first."""
    from segmint.clock import ensure_utc
    from segmint.privacy import audit as log
    from segmint.privacy.erased import audit_subjects

    ws = ctx.workspace
    store = ws.store
    about = None if subject is None else audit_subjects(ws.privacy, subject)
    found = log.entries(store, subject=about, action=action, actor=actor, limit=limit)
    if not found:
        _warn_of_unmatched(store, action=action, actor=actor, subject=subject, about=about)
    data = [  # stored in UTC without an offset: written with it, as every other instant
        {"id": e.id, "at": ensure_utc(e.occurred_at), "actor": e.actor, "action": e.action,
         "subject": e.subject, "details": e.details}
        for e in found
    ]  # fmt: skip
    if fmt == "json":
        emit_json(data)
        return
    rows = [(d["id"], d["at"], d["actor"], d["action"], d["subject"] or "") for d in data]
    emit_table("Audit log", ["id", "at", "actor", "action", "subject"], rows)


def _warn_of_unmatched(store: Any, *, about: list[str] | None, **given: str | None) -> None:
    """Warn of each filter of ``audit list`` that no entry matches on its own (a typo).

    ``about`` is what ``--subject`` stands for (:func:`segmint.privacy.erased.audit_subjects`).
    """
    from segmint.cli.output import err_console
    from segmint.common import did_you_mean
    from segmint.privacy import audit as log

    for option, value in given.items():
        if value is None:
            continue
        if option == "subject":
            if about and not log.entries(store, subject=about, limit=1):
                err_console.print(f"[yellow]warning:[/yellow] no audit entry is about {value!r} "
                                  "(a receipt id, or a person by any id)",
                                  highlight=False, soft_wrap=True)  # fmt: skip
            continue
        known = log.logged(store, option)
        if option == "action":  # one segmint writes but nothing did yet is no typo
            known = sorted({*known, *log.ACTIONS})
        if value in known:
            continue
        hint = did_you_mean(value, known) or f"{option}s logged: {', '.join(known) or 'none'}"
        err_console.print(f"[yellow]warning:[/yellow] no audit entry has {option} {value!r}; "
                          f"{hint}", highlight=False, soft_wrap=True)  # fmt: skip


def register(cli: click.Group) -> None:
    """Add the privacy and audit groups to ``cli``."""
    cli.add_command(privacy)
    cli.add_command(audit)
