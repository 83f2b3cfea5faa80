"""``keel evidence``: tree heads, proofs, export, and verification online or offline (story 05 core).

``verify --offline`` and ``check-proof`` need neither a database nor a running Keel:
they read files and use the same pure verifiers the ledger uses.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from keel.cli import render
from keel.cli.client import EXIT_FAILURE, EXIT_INPUT, CliError, State, state_of
from keel.cli.inputs import read_document
from keel.evidence.continuity import check_continuity
from keel.evidence.offline import verify_export
from keel.evidence.proofdoc import check_proof_document

app = typer.Typer(help="The evidence ledger: tree heads, proofs, export, verification.", no_args_is_help=True)
proof_app = typer.Typer(
    help="Inclusion and consistency proofs as transparency-log JSON.", no_args_is_help=True
)
app.add_typer(proof_app, name="proof")

EVIDENCE = "/api/v1/evidence"
Output = Annotated[Path | None, typer.Option("-o", "--output", help="Write to this file instead of stdout.")]


@app.command("tree-head")
def tree_head(
    ctx: typer.Context,
    tree_size: Annotated[
        int | None, typer.Option("--tree-size", help="A past size; the latest if absent.")
    ] = None,
) -> None:
    """The signed tree head (size, root hash, timestamp, Ed25519 signature)."""
    state = state_of(ctx)
    render.show(
        state, state.api().get(f"{EVIDENCE}/tree-head", params={"tree_size": tree_size}), title="Tree head"
    )


@app.command()
def entries(
    ctx: typer.Context,
    event_type: Annotated[str | None, typer.Option("--type", help="Only events of this type.")] = None,
    after_seq: Annotated[int, typer.Option("--after", help="Start after this sequence number.")] = -1,
    limit: Annotated[int, typer.Option("--limit", help="At most this many (1-1000).")] = 100,
) -> None:
    """Ledger entries the caller may read."""
    state = state_of(ctx)
    params = {"event_type": event_type, "after_seq": after_seq, "limit": limit}
    page = state.api().get(f"{EVIDENCE}/entries", params=params)
    if state.json:
        render.print_json(page)
        return
    items = [
        {"seq": e["seq"], **{k: e["event"].get(k) for k in ("type", "tenant_id", "actor_id", "occurred_at")}}
        for e in page["items"]
    ]
    render.show(state, items, columns=["seq", "type", "tenant_id", "actor_id", "occurred_at"], title="Ledger")


@app.command()
def receipts(
    ctx: typer.Context,
    kind: Annotated[str | None, typer.Option("--kind", help="Only receipts of this kind.")] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="Only receipts about this id.")] = None,
) -> None:
    """Receipts (deployment, RBAC review, tenant provisioning, ...) the caller may read."""
    state = state_of(ctx)
    params = {k: v for k, v in (("kind", kind), ("subject_id", subject)) if v}
    items = state.api().get_all(f"{EVIDENCE}/receipts", params=params)
    if state.json:
        render.print_json(items)
        return
    columns = ["kind", "subject_id", "receipt_id", "created_at"]
    render.show(state, [{k: r[k] for k in columns} for r in items], columns=columns, title="Receipts")


@proof_app.command("inclusion")
def inclusion(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(help="Sequence number of the entry.")],
    tree_size: Annotated[int | None, typer.Option("--tree-size", help="Prove against this size.")] = None,
    output: Output = None,
) -> None:
    """Prove that entry SEQ is in the ledger (leafIdx, treeSize, root, leafHash, proof)."""
    state = state_of(ctx)
    doc = state.api().get(f"{EVIDENCE}/proofs/inclusion", params={"seq": seq, "tree_size": tree_size})
    _document(state, doc, output, f"inclusion proof of entry {seq}")


@proof_app.command("consistency")
def consistency(
    ctx: typer.Context,
    size1: Annotated[int, typer.Argument(help="The older tree size.")],
    size2: Annotated[
        int | None, typer.Argument(help="The newer tree size; the current one if absent.")
    ] = None,
    output: Output = None,
) -> None:
    """Prove that the tree of SIZE1 is a prefix of the tree of SIZE2 (size1, size2, root1, root2, proof)."""
    state = state_of(ctx)
    doc = state.api().get(f"{EVIDENCE}/proofs/consistency", params={"size1": size1, "size2": size2})
    _document(state, doc, output, f"consistency proof from size {size1}")


@app.command()
def export(
    ctx: typer.Context,
    output: Annotated[Path, typer.Option("-o", "--output", help="The export file to write.")],
) -> None:
    """Export the whole ledger for offline verification (Compliance Officer)."""
    state = state_of(ctx)
    with render.progress() as bar:
        task = bar.add_task("exporting the ledger", total=3)
        doc = state.api().get(f"{EVIDENCE}/export")
        bar.update(task, advance=1, description=f"writing {len(doc['entries'])} entries")
        data = json.dumps(doc, indent=1).encode()
        _write(output, data)
        bar.update(task, advance=1, description="hashing the file")
        digest = hashlib.sha256(data).hexdigest()
        bar.update(task, advance=1, description="exported")
    summary = {
        "file": str(output),
        "entries": len(doc["entries"]),
        "tree_heads": len(doc["tree_heads"]),
        "sha256": digest,
    }
    render.show(state, summary, title="Ledger exported")


@app.command("public-key")
def public_key(ctx: typer.Context, output: Output = None) -> None:
    """The platform's Ed25519 public key (PEM), to verify exports and tree heads independently."""
    state = state_of(ctx)
    key = state.api().get(f"{EVIDENCE}/public-key", auth=False)
    if output is not None:
        _write(output, key["public_key_pem"].encode())
        render.message(state, f"public key {key['key_id']} written to {output}")
    elif state.json:
        render.print_json(key)
    else:
        typer.echo(key["public_key_pem"].rstrip("\n"))


@app.command()
def verify(
    ctx: typer.Context,
    offline: Annotated[
        Path | None, typer.Option("--offline", metavar="FILE", help="Verify an export file; no Keel needed.")
    ] = None,
    public_key_file: Annotated[
        Path | None, typer.Option("--public-key", metavar="PEMFILE", help="The key to verify with (offline).")
    ] = None,
    expect_head: Annotated[
        Path | None,
        typer.Option(
            "--expect-head",
            metavar="FILE",
            help="A signed tree head saved earlier; the ledger must extend it.",
        ),
    ] = None,
) -> None:
    """Recompute every leaf, root and signature; exit 1 naming the first bad entry."""
    state = state_of(ctx)
    if offline is None and public_key_file is not None:
        raise CliError("--public-key: only used with --offline FILE", EXIT_INPUT, field="--public-key")
    if offline is not None and expect_head is not None:
        raise CliError("--expect-head: only used online", EXIT_INPUT, field="--expect-head")
    if offline is None:
        report = state.api().get(f"{EVIDENCE}/verify")
        if report.get("ok") and expect_head is not None:
            report = _continuity(state.api(), expect_head, report)
    else:
        report = _verify_file(offline, public_key_file)
    _verdict(state, report)


def _continuity(api, saved_file: Path, report: dict) -> dict:
    """The stored ledger verified; now it must also extend the head saved outside Keel."""
    saved = read_document(saved_file, "--expect-head")
    current = api.get(f"{EVIDENCE}/tree-head")
    size1 = saved.get("tree_size") if isinstance(saved, dict) else None
    proof = None
    if isinstance(size1, int) and 0 < size1 < current["tree_size"]:
        proof = api.get(f"{EVIDENCE}/proofs/consistency", params={"size1": size1})
    ok, reason = check_continuity(saved, current, proof, api.get(f"{EVIDENCE}/public-key")["public_key_pem"])
    return {**report, "ok": ok, "reason": f"{report['reason']}; {reason}"}


def _verify_file(path: Path, key_path: Path | None) -> dict:
    def failed(reason: str) -> dict:
        return {
            "ok": False,
            "entries_checked": 0,
            "tree_heads_checked": 0,
            "first_bad_seq": None,
            "reason": reason,
        }

    try:
        doc = json.loads(path.read_bytes())
    except OSError as exc:
        return failed(f"cannot read {path}: {exc.strerror}")
    except (ValueError, RecursionError) as exc:
        return failed(f"{path} is not valid JSON: {exc}")
    key = None
    if key_path is not None:
        try:
            key = key_path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            return failed(f"cannot read the public key {key_path}: {exc}")
    return asdict(verify_export(doc, key))


def _verdict(state: State, report: dict) -> None:
    if state.json:
        render.print_json(report)
    elif report["ok"]:
        render.line(f"ledger verifies: {report['reason']}")
    else:
        render.line("ledger does NOT verify", style="bold red")
        if report.get("first_bad_seq") is not None:
            render.line(f"first bad entry: seq {report['first_bad_seq']}: {report['reason']}")
        else:
            render.line(f"reason: {report['reason']}")
    if not report["ok"]:
        raise typer.Exit(EXIT_FAILURE)


@app.command("check-proof")
def check_proof(
    ctx: typer.Context, file: Annotated[Path, typer.Argument(help="A proof document (JSON).")]
) -> None:
    """Check an inclusion or consistency proof document; exit 0 valid, 1 invalid. No Keel needed."""
    state = state_of(ctx)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        result = {"ok": False, "kind": None, "reason": f"cannot read {file}: {exc.strerror}"}
    else:
        check = check_proof_document(raw)
        result = {"ok": check.ok, "kind": check.kind, "reason": check.reason}
    if state.json:
        render.print_json(result)
    elif result["ok"]:
        render.line(f"valid {result['kind']} proof: {result['reason']}")
    else:
        render.line(f"invalid proof: {result['reason']}", style="bold red")
    if not result["ok"]:
        raise typer.Exit(EXIT_FAILURE)


def _document(state: State, doc: dict[str, Any], output: Path | None, what: str) -> None:
    if output is None:
        render.print_json(doc)
        return
    _write(output, (json.dumps(doc, indent=2) + "\n").encode())
    render.message(state, f"{what} written to {output}")


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise CliError(f"output: cannot write {path}: {exc.strerror}", EXIT_INPUT, field="output") from None


template_app = typer.Typer(
    help="Evidence export templates and the packs made from them.", no_args_is_help=True
)
app.add_typer(template_app, name="template")


@template_app.command("define")
def define_template(
    ctx: typer.Context,
    template_id: Annotated[str, typer.Argument(help="Template id, e.g. EV-STD-01.")],
    sections: Annotated[
        list[str],
        typer.Option("--section", help="action_receipts, kpi_snapshots, lineage_diagrams or identity_map."),
    ],
    retention_years: Annotated[int, typer.Option("--retention-years", help="How long a pack is kept.")],
) -> None:
    """Define a template, or its next version (Compliance Officer)."""
    state = state_of(ctx)
    body = {"template_id": template_id, "sections": sections, "retention_years": retention_years}
    render.show(state, state.api().post(f"{EVIDENCE}/export-templates", json=body), title="Export template")


@template_app.command("list")
def list_templates(ctx: typer.Context) -> None:
    """Every version of every export template."""
    state = state_of(ctx)
    items = state.api().get_all(f"{EVIDENCE}/export-templates")
    columns = ["template_id", "version", "sections", "retention_years", "created_at"]
    render.show(state, items, columns=columns, title="Export templates")


@template_app.command("pack")
def generate_pack(
    ctx: typer.Context,
    template_id: Annotated[str, typer.Argument(help="Template id, e.g. EV-STD-01.")],
    tenant: Annotated[str, typer.Option("--tenant", help="The tenant the pack is about (id).")],
    version: Annotated[
        int | None, typer.Option("--version", help="A template version (default: latest).")
    ] = None,
) -> None:
    """Generate a tenant's evidence pack from a template (Compliance Officer); prints its path and sha256."""
    state = state_of(ctx)
    body = {"template_id": template_id, **({"version": version} if version else {})}
    render.show(
        state, state.api().post(f"/api/v1/tenants/{tenant}/evidence-packs", json=body), title="Evidence pack"
    )


@app.command()
def completeness(
    ctx: typer.Context,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="One tenant (providers); default all.")
    ] = None,
) -> None:
    """Check that every pipeline run of the last day has its evidence; gaps open incidents."""
    state = state_of(ctx)
    report = state.api().post(f"{EVIDENCE}/completeness-checks", params={"tenant_id": tenant})
    if state.json:
        render.show(state, report)
        return
    rows = [{"tenant_id": t, **r, "gaps": ", ".join(r["gaps"]) or "-"} for t, r in report["tenants"].items()]
    render.show(
        state,
        rows,
        title="Evidence completeness",
        columns=["tenant_id", "runs", "evidence_completeness_rate", "gaps"],
    )
