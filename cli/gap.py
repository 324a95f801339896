"""``doge gap ...``: create, list, show, tag, rm, export, import and diff gaps."""

from __future__ import annotations

import click

from doge.cli.context import echo_json, echo_table, pass_settings


@click.group()
def gap():
    """Named, versioned domain gaps. Refs: NAME, NAME@v2, NAME@ALIAS."""


@gap.command()
@click.argument("name")
@click.option("--src", required=True, type=click.Path(), help="Folder of source-domain images (or of class folders).")
@click.option("--tgt", required=True, type=click.Path(), help="Folder of target-domain images (or of class folders).")
@click.option("--model", envvar="DOGE_MODEL", help="HF id or local folder of the encoder's model.")
@click.option("--encoder", default="clip", show_default=True, help="Encoder plugin.")
@click.option("--estimator", default="mean", show_default=True, help="Gap estimator plugin.")
@click.option("--src-limit", type=click.IntRange(min=1), help="At most this many source images (drawn evenly across classes).")
@click.option("--tgt-limit", type=click.IntRange(min=1), help="At most this many target images.")
@click.option("--seed", default=0, show_default=True, help="Seed for sampling images.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--workers", type=click.IntRange(min=0), help="Decoding worker processes (default: automatic).")
@click.option("--device", default="auto", show_default=True, help="cuda, mps, cpu or auto.")
@click.option("--description", default="", help="Free text stored with the version.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored version as JSON.")
@pass_settings
def create(settings, name, src, tgt, model, encoder, estimator, src_limit, tgt_limit, seed, batch_size,
           workers, device, description, as_json):
    """Encode --src and --tgt and store their gap as the next version of NAME."""
    from doge.api import create_gap

    g = create_gap(
        name, src, tgt, model=model, encoder=encoder, estimator=estimator, src_limit=src_limit,
        tgt_limit=tgt_limit, seed=seed, batch_size=batch_size, workers=workers, device=device,
        description=description, progress=not settings.quiet, registry=settings.registry(),
    )
    if as_json:
        echo_json(settings.registry().resolve(g.ref).to_json())
        return
    src_side, tgt_side = g.provenance["source"], g.provenance["target"]
    click.echo(
        f"created {g.ref}: {g.provenance['estimator']['name']} gap of {src_side['images']} source and "
        f"{tgt_side['images']} target images, dim {g.dim}, |gap| {float(g.vector.norm()):.4f}, sha256 {g.sha256[:12]}"
    )


@gap.command("list")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
def list_(settings, name, as_json):
    """List gap versions (all, or the versions of NAME)."""
    versions = settings.registry().list(name)
    if as_json:
        echo_json([v.to_json() for v in versions])
        return
    if not versions:
        click.echo("no gaps yet: doge gap create 'real->painting' --src DIR --tgt DIR")
        return
    rows = [
        [v.ref, ",".join(v.aliases), v.dim, v.provenance.get("encoder", {}).get("model", "?"),
         v.provenance.get("estimator", {}).get("name", "?"), str(v.created_at)[:19]]
        for v in versions
    ]
    echo_table(rows, ["REF", "ALIASES", "DIM", "MODEL", "ESTIMATOR", "CREATED"])


@gap.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
def show(settings, ref, as_json):
    """Show one gap version and its provenance."""
    import json

    v = settings.registry().resolve(ref)
    if as_json:
        echo_json(v.to_json())
        return
    click.echo(f"{v.ref}  aliases: {', '.join(v.aliases) or '-'}")
    click.echo(f"sha256: {v.sha256}")
    click.echo(f"dim: {v.dim}   created: {v.created_at} by {v.created_by}")
    if v.description:
        click.echo(f"description: {v.description}")
    click.echo("provenance:")
    click.echo(json.dumps(v.provenance, indent=2, sort_keys=True, default=str))


@gap.command()
@click.argument("ref")
@click.argument("alias")
@pass_settings
def tag(settings, ref, alias):
    """Point ALIAS of REF's name at REF's version (moving it if it exists)."""
    v = settings.registry().tag(ref, alias)
    click.echo(f"{v.name}@{alias} -> {v.ref}")


@gap.command()
@click.argument("ref")
@pass_settings
def rm(settings, ref):
    """Remove one gap version (its number is never reused)."""
    v = settings.registry().remove(ref)
    click.echo(f"removed {v.ref}")


@gap.command()
@click.argument("ref")
@click.argument("file", type=click.Path(dir_okay=False))
@pass_settings
def export(settings, ref, file):
    """Write REF to FILE.safetensors (it carries its provenance)."""
    v = settings.registry().export(ref, file)
    click.echo(f"exported {v.ref} to {file} (sha256 {v.sha256[:12]})")


@gap.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--as", "as_name", help="Store under this name instead of the one in the file.")
@pass_settings
def import_(settings, file, as_name):
    """Import a gap from a .safetensors file written by 'doge gap export'."""
    v = settings.registry().import_file(file, as_name=as_name)
    click.echo(f"imported {file} as {v.ref} (sha256 {v.sha256[:12]})")


@gap.command()
@click.argument("ref_a")
@click.argument("ref_b")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_settings
def diff(settings, ref_a, ref_b, as_json):
    """Compare two gaps: cosine, norm ratio and provenance differences."""
    from doge.compare import gap_diff

    reg = settings.registry()
    a, b = reg.resolve(ref_a), reg.resolve(ref_b)
    result = gap_diff(a.ref, reg.load_vector(a), a.provenance, b.ref, reg.load_vector(b), b.provenance)
    if as_json:
        echo_json(result)
        return
    click.echo(f"{a.ref} vs {b.ref}")
    click.echo(f"cosine      {result['cosine']:.4f}")
    click.echo(f"norm ratio  {result['norm_ratio']:.4f}  (|{b.ref}| / |{a.ref}|)")
    click.echo(f"l2 distance {result['l2_distance']:.4f}")
    differences = result["provenance_differences"]
    if differences:
        click.echo("provenance differences:")
        for key, (va, vb) in differences.items():
            click.echo(f"  {key}: {va!r} -> {vb!r}")
    else:
        click.echo("provenance: identical (apart from creation time)")
