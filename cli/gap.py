"""``doge gap ...``: create, explain, list, show, preview, tag, untag, label, history, rm, export, import, diff, eval and compare gaps."""

from __future__ import annotations

import json

import click

from doge.cli.context import echo_json, echo_table, key_values, pass_doge_options
from doge.cli.gap_eval import compare, eval_
from doge.cli.options import (
    device_option,
    json_option,
    model_option,
    render_settings_options,
    runtime_options,
    seed_option,
    value_options,
)
from doge.gaps.options import Sampling, TextSides

LIST_LIMIT = 100  # what a person reads in `doge gap list`; --all or --limit for more


@click.group()
def gap():
    """Named, versioned domain gaps. Refs: NAME, NAME@v2, NAME@ALIAS."""


gap.add_command(eval_)  # doge gap eval, doge gap compare: cli/gap_eval.py
gap.add_command(compare)


@gap.command()
@click.argument("name")
@click.option("--src", type=click.Path(), help="Folder of source-domain images (or of class folders).")
@click.option("--tgt", type=click.Path(), help="Folder of target-domain images (or of class folders).")
@value_options(
    TextSides,
    "text",
    click.option(
        "--src-text",
        metavar="TEMPLATE",
        help="The source as text instead of images, e.g. 'a photo of a {}' ({} takes each class name).",
    ),
    click.option("--tgt-text", metavar="TEMPLATE", help="The target as text, e.g. 'a pencil sketch of a {}'."),
    click.option("--classes", metavar="A,B,...", help="Class names for the text templates' {}."),
    click.option(
        "--classes-from", type=click.Path(file_okay=False), help="Take the class names from this folder's sub-folders."
    ),
    click.option(
        "--text-model",
        help="CLIP text tower for --src-text/--tgt-text (default: the one aligned with --model's image encoder).",
    ),
)
@model_option("HF id or local folder of the encoder's model.")
@click.option("--encoder", default="clip", show_default=True, help="Encoder plugin.")
@click.option("--estimator", default="mean", show_default=True, help="Gap estimator plugin.")
@click.option(
    "--estimator-option",
    "estimator_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An option of the estimator (repeatable), e.g. --estimator trimmed-mean --estimator-option trim=0.2.",
)
@value_options(
    Sampling,
    "sampling",
    click.option(
        "--src-limit",
        type=click.IntRange(min=1),
        help="At most this many source images (drawn evenly across classes).",
    ),
    click.option("--tgt-limit", type=click.IntRange(min=1), help="At most this many target images."),
    seed_option(0, "Seed for sampling images."),
)
@runtime_options(
    "batch_size",
    "workers",
    "device",
    "ray",
    batch_size=32,
    batch_help="Images per encoder call.",
    ray_help="Encode the images on Ray: a local Ray, or a cluster (auto, ray://HOST:PORT).",
)
@click.option("--description", default="", help="Free text stored with the version.")
@json_option("Print the stored version as JSON.")
def create(
    name,
    src,
    tgt,
    text,
    model,
    encoder,
    estimator,
    estimator_options,
    sampling,
    runtime,
    description,
    as_json,
):
    """Encode --src and --tgt and store their gap as the next version of NAME.

    Either side may be text instead (--src-text / --tgt-text with --classes): the gap between
    mean CLIP text embeddings, as LADS and StyleGAN-NADA use them; text and image sides mix.
    """
    from doge import pluginmanager
    from doge.api import create_gap, create_text_gap

    common = dict(model=model, encoder=encoder, description=description, sampling=sampling, runtime=runtime)
    if text.src_text is not None or text.tgt_text is not None:
        if estimator != "mean" or estimator_options:
            raise click.UsageError(
                "a gap with a text side is a difference of means: drop --estimator/--estimator-option"
            )
        if runtime.ray is not None:
            raise click.UsageError("--ray encodes images: a gap with a text side is made here; drop --ray")
        g = create_text_gap(name, src=src, tgt=tgt, text=text, **common)
    else:
        if src is None or tgt is None:
            raise click.UsageError("give --src DIR and --tgt DIR (or --src-text / --tgt-text for text sides)")
        if text.classes or text.classes_from or text.text_model:
            raise click.UsageError("--classes, --classes-from and --text-model go with --src-text / --tgt-text")
        pairs = key_values(estimator_options, "--estimator-option", "trim=0.2")
        params = pluginmanager.parse_options("estimators", estimator, pairs)
        g = create_gap(name, src, tgt, estimator=estimator, estimator_params=params, **common)
    if as_json:
        from doge.gaps.store import with_registry

        echo_json(with_registry(runtime).registry.resolve(g.ref).to_json())
        return
    src_side, tgt_side = g.provenance["source"], g.provenance["target"]
    click.echo(
        f"created {g.ref}: {g.provenance['estimator']['name']} gap of {_side_words(src_side, 'source')} and "
        f"{_side_words(tgt_side, 'target')}, dim {g.dim}, |gap| {float(g.vector.norm()):.4f}, sha256 {g.sha256[:12]}"
    )


def _side_words(side: dict, which: str) -> str:
    if "text" in side:
        return f"{side['texts']} {which} text(s) {side['text']!r}"
    return f"{side['images']} {which} images"


@gap.command()
@click.argument("ref")
@click.option(
    "--text-model", help="CLIP text tower (default: the one aligned with the gap's image encoder; see README)."
)
@click.option("--template", default="a photo of {}", show_default=True, help="Prompt each word is embedded in.")
@click.option(
    "--words",
    default=10000,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many of the most frequent English words to rank (beside doge's style/domain phrases).",
)
@click.option("--no-phrases", is_flag=True, help="Leave out doge's list of style, domain and condition phrases.")
@click.option(
    "--word", "extra_words", multiple=True, metavar="TEXT", help="Also rank this word or phrase (repeatable)."
)
@click.option("--top", default=15, show_default=True, type=click.IntRange(min=1), help="Words shown per direction.")
@click.option(
    "--no-center",
    is_flag=True,
    help="Rank by the raw cosine (the paper's way) instead of after taking away the vocabulary's common direction.",
)
@click.option("--store", is_flag=True, help="Keep the top words on the version as explain.* labels (gap show).")
@device_option()
@json_option()
@pass_doge_options
def explain(
    doge_options, ref, text_model, template, words, no_phrases, extra_words, top, no_center, store, device, as_json
):
    """What REF means in words: words toward its target and toward its source, by cosine."""
    from doge.api import load_gap
    from doge.gaps.explain import explain_gap, explanation_labels

    reg = doge_options.registry()
    g = load_gap(ref, registry=reg)
    result = explain_gap(
        g,
        text_model=text_model,
        template=template,
        words=words,
        phrases=not no_phrases,
        extra_words=list(extra_words),
        top=top,
        center=not no_center,
        device=device,
        home=doge_options.home,
        progress=not doge_options.quiet,
    )
    if store:
        reg.label(g.ref, explanation_labels(result))
        result["stored"] = True
    if as_json:
        echo_json(result)
        return
    click.echo(
        f"{g.ref} in words ({result['vocabulary']} words and phrases in {template!r}, "
        f"text model {result['text_model']['model']})"
    )
    for key, title in (("toward_target", "toward the target"), ("toward_source", "toward the source")):
        click.echo(f"{title}:")
        if not result[key]:
            click.echo("  (no word points this way)")
        for item in result[key]:
            click.echo(f"  {item['cosine']:+.3f}  {item['word']}")
    if store:
        click.echo(f"stored as explain.* labels on {g.ref} (doge gap show {g.ref})")


@gap.command("list")
@click.argument("name", required=False)
@click.option(
    "--where",
    "where",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only versions with this label (repeatable: all must match).",
)
@click.option(
    "--search", metavar="TEXT", help="Only versions whose name, description or labels contain TEXT (any case)."
)
@click.option("--remote", "remote_name", help="List the gaps of this remote instead (see 'doge remote list').")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help=f"At most this many versions (default: {LIST_LIMIT} in the table, all with --json).",
)
@click.option("--all", "show_all", is_flag=True, help="Every version, however many.")
@json_option("Machine-readable output (one version a line).")
@pass_doge_options
def list_(doge_options, name, where, search, remote_name, limit, show_all, as_json):
    """List gap versions (all, or the versions of NAME)."""
    from doge.cli.remote import open_remote
    from doge.registry.labels import parse_labels

    if limit and show_all:
        raise click.UsageError("--limit and --all contradict each other: give one")
    if limit is None and not show_all and not as_json:
        limit = LIST_LIMIT
    registry = open_remote(doge_options, remote_name) if remote_name else doge_options.registry()
    found, total = registry.list_rows(name, where=parse_labels(where), search=search, limit=limit)
    if as_json:
        # one version a line, its provenance text spliced in as stored: fast for 10,000 versions
        click.echo("[\n" + ",\n".join(row.to_json_text() for row in found) + "\n]" if found else "[]")
        return
    if not found:
        if where or search:
            click.echo("no gap versions match; drop --where/--search to see them all")
        else:
            click.echo("no gaps yet: doge gap create 'real->painting' --src DIR --tgt DIR")
        return
    versions = [row.version_object() for row in found]
    rows = [
        [
            v.ref,
            ",".join(v.aliases),
            v.dim,
            _part(v.provenance, "encoder", "model"),
            _part(v.provenance, "estimator", "name"),
            str(v.created_at)[:19],
            ",".join(f"{k}={val}" for k, val in sorted(v.labels.items())),
        ]
        for v in versions
    ]
    echo_table(rows, ["REF", "ALIASES", "DIM", "MODEL", "ESTIMATOR", "CREATED", "LABELS"])
    if total > len(found):
        click.echo(f"... {total - len(found)} more of {total}: narrow with NAME, --where or --search, or show --all")


@gap.command()
@click.argument("ref")
@json_option()
@pass_doge_options
def show(doge_options, ref, as_json):
    """Show one gap version and its provenance."""
    from doge.registry.fsck import check_version

    reg = doge_options.registry()
    v = reg.resolve(ref)
    evaluations, previews = reg.evaluations(v), reg.previews(v)
    damage = check_version(reg, v, deep=False)  # the sha256 only: show stays fast
    if as_json:
        echo_json({**v.to_json(), "evaluations": evaluations, "previews": previews, "blob_problems": damage})
        if damage:
            raise SystemExit(1)
        return
    click.echo(f"{v.ref}  aliases: {', '.join(v.aliases) or '-'}")
    click.echo(f"sha256: {v.sha256}")
    click.echo(f"dim: {v.dim}   created: {v.created_at} by {v.created_by}")
    if v.labels:
        click.echo(f"labels: {', '.join(f'{k}={val}' for k, val in sorted(v.labels.items()))}")
    if v.description:
        click.echo(f"description: {v.description}")
    click.echo("provenance:")
    click.echo(json.dumps(v.provenance, indent=2, sort_keys=True, default=str))
    if evaluations:
        from doge.cli.gap_eval import evaluation_summary_line

        click.echo(f"evaluations: {len(evaluations)}; latest: {evaluation_summary_line(evaluations[-1])}")
    for p in previews:
        click.echo(f"preview {p['id']}: {preview_summary(p)}")

    if damage:  # shown whole, then the damage as the error line
        raise click.ClickException(damage[0]["message"])


def _part(provenance: dict, key: str, field: str) -> str:
    """``provenance[key][field]`` for a listing; the text itself when a caller stored text there."""
    value = provenance.get(key)
    if isinstance(value, dict):
        return str(value.get(field, "?"))
    return str(value) if value else "?"


def preview_summary(p: dict) -> str:
    """A stored preview in a line: what made it, when, by whom."""
    if p.get("damaged"):
        return str(p["damaged"])
    st = p["settings"]
    made = (
        f"{st.get('n', '?')} image(s) of {st.get('src', '?')}, w={st.get('edit_weight', '?')}, "
        f"{st.get('steps', '?')} steps, {st.get('size', '?')} px, seed {st.get('seed', '?')}, "
        f"control {','.join(st.get('controls') or []) or '-'}, model {st.get('model', '?')}"
    )
    noise = " [random tiny test model: its images are noise]" if st.get("tiny_model") else ""
    return f"{made}{noise}; {p['created_at']} by {p['created_by']} (sha256 {p['sha256'][:12]}, {p['size']} bytes)"


@gap.command()
@click.argument("ref")
@click.option("--src", type=click.Path(), help="Folder of source images to preview the gap on.")
@click.option(
    "-n", "count", default=4, show_default=True, type=click.IntRange(min=1), help="Source images in the grid."
)
@click.option("--rm", "remove", type=int, metavar="ID", help="Remove preview ID (see 'doge gap show') instead.")
@render_settings_options(
    "model", "edit_weight", "steps", "guidance", "prompt", "controls", "controlnets", "size", "seed"
)
@runtime_options("device", "dtype", "batch_size")
@json_option("Print the stored preview as JSON.")
@pass_doge_options
def preview(doge_options, ref, src, count, remove, render, runtime, as_json):
    """Render a small grid of what gap REF does to -n images of --src and attach it to the version.

    The grid (source | shifted, one row per image) is stored in the blob store beside the gap and
    listed by 'doge gap show'; 'doge serve' shows it. Several previews per version; --rm ID removes one.
    """
    if remove is not None:
        if src:
            raise click.UsageError("--rm removes a preview; it takes no --src")
        p = doge_options.registry().remove_attachment(ref, remove, kind="preview")
        click.echo(f"removed preview {p['id']} of {p['ref']}")
        return
    if not src:
        raise click.UsageError("give --src DIR: the images to preview the gap on (or --rm ID)")
    from doge.api import preview as make_preview

    p = make_preview(ref, src, render, runtime, n=count)
    if as_json:
        echo_json(p)
        return
    click.echo(f"stored preview {p['id']} of {p['ref']}: {preview_summary(p)}")


@gap.command()
@click.argument("ref")
@click.argument("alias")
@pass_doge_options
def tag(doge_options, ref, alias):
    """Point ALIAS of REF's name at REF's version (moving it if it exists)."""
    v = doge_options.registry().tag(ref, alias)
    click.echo(f"{v.name}@{alias} -> {v.ref}")


@gap.command()
@click.argument("name")
@click.argument("alias")
@pass_doge_options
def untag(doge_options, name, alias):
    """Remove ALIAS from NAME."""
    v = doge_options.registry().untag(name, alias)
    click.echo(f"removed {name}@{alias} (it pointed at {v.ref})")


@gap.command()
@click.argument("ref")
@click.argument("labels", nargs=-1, metavar="KEY=VALUE...")
@click.option("--rm", "remove", multiple=True, metavar="KEY", help="Remove this label (repeatable).")
@pass_doge_options
def label(doge_options, ref, labels, remove):
    """Set KEY=VALUE labels on REF's version, or remove them with --rm KEY."""
    from doge.registry.labels import parse_labels

    v = doge_options.registry().label(ref, parse_labels(labels), remove=remove)
    shown = ", ".join(f"{k}={val}" for k, val in sorted(v.labels.items())) or "none"
    click.echo(f"{v.ref} labels: {shown}")


@gap.command()
@click.argument("name")
@json_option()
@pass_doge_options
def history(doge_options, name, as_json):
    """Who created, removed, tagged or labelled versions of NAME, and when (oldest first)."""
    entries = doge_options.registry().history(name)
    if as_json:
        echo_json(entries)
        return
    if not entries:
        click.echo(f"no recorded changes to {name!r} (the registry kept no history before it was upgraded)")
        return
    rows = [
        [
            e["at"],
            e["who"],
            e["action"],
            f"v{e['version']}" if e["version"] is not None else "-",
            _change(e["before"]),
            _change(e["after"]),
        ]
        for e in entries
    ]
    echo_table(rows, ["WHEN", "WHO", "ACTION", "VERSION", "BEFORE", "AFTER"])


def _change(value) -> str:
    """A before/after value of the history in a few words: prod->v2, team=vision, v3."""
    if value is None:
        return "-"
    if "alias" in value:
        return f"{value['alias']}->v{value['version']}"
    if "key" in value:
        return f"{value['key']}={value['value']}"
    return f"v{value['version']} ({value['sha256'][:12]})"


@gap.command()
@click.argument("ref")
@pass_doge_options
def rm(doge_options, ref):
    """Remove one gap version (its number is never reused)."""
    v = doge_options.registry().remove(ref)
    click.echo(f"removed {v.ref}")


@gap.command()
@click.argument("args", nargs=-1, metavar="REF FILE | --bundle LIB.doge [REF...]")
@click.option(
    "--bundle",
    type=click.Path(dir_okay=False),
    help="Write the REFs (every version if none given), their aliases and provenance to one .doge file.",
)
@pass_doge_options
def export(doge_options, args, bundle):
    """Write REF to FILE.safetensors (it carries its provenance), or several gaps to a --bundle."""
    if bundle:
        from doge.registry.bundles import write_bundle

        versions = write_bundle(doge_options.registry(), args, bundle)
        click.echo(f"wrote {bundle}: {len(versions)} gap version(s): {', '.join(v.ref for v in versions)}")
        return
    if len(args) != 2:
        raise click.UsageError("give REF FILE, or --bundle LIB.doge [REF...]")
    ref, file = args
    v = doge_options.registry().export(ref, file)
    click.echo(f"exported {v.ref} to {file} (sha256 {v.sha256[:12]})")


@gap.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--as", "as_name", help="Store under this name instead of the one in the file.")
@click.option(
    "--new-version",
    is_flag=True,
    help="Bundles: where an entry's number is taken here (or was used here), store it as the next version.",
)
@json_option("Bundles: print what became of each entry as JSON.")
@pass_doge_options
def import_(doge_options, file, as_name, new_version, as_json):
    """Import a gap from a .safetensors file, or every gap of a .doge bundle, written by 'doge gap export'."""
    from doge.registry.bundles import import_bundle, is_bundle

    if is_bundle(file):
        if as_name:
            raise click.UsageError("--as renames a single gap file; a bundle keeps the names it holds")
        from doge.cli.remote import report

        placed = import_bundle(doge_options.registry(), file, new_version=new_version)
        report(placed, "imported", f"from {file}", "here", as_json)
        return
    v = doge_options.registry().import_file(file, as_name=as_name)
    click.echo(f"imported {file} as {v.ref} (sha256 {v.sha256[:12]})")


@gap.command()
@click.argument("refs", nargs=-1, required=True, metavar="REF...")
@click.argument("remote_name", metavar="REMOTE")
@click.option(
    "--new-version",
    is_flag=True,
    help="Where a version's number is taken on the remote (or was used there), store it as the next version.",
)
@click.option("--aliases", is_flag=True, help="Also set the versions' aliases on the remote.")
@json_option()
@pass_doge_options
def push(doge_options, refs, remote_name, new_version, aliases, as_json):
    """Copy REFs to REMOTE, keeping their sha256 and version numbers (all or nothing)."""
    from doge.cli.remote import open_remote, report
    from doge.registry.transfer import push as push_versions

    remote = open_remote(doge_options, remote_name, must_exist=False)
    placed = push_versions(doge_options.registry(), refs, remote, remote_name, new_version=new_version, aliases=aliases)
    report(placed, "pushed", f"to {remote_name}", f"on {remote_name}", as_json)


@gap.command()
@click.argument("specs", nargs=-1, required=True, metavar="REMOTE:REF...")
@click.option(
    "--new-version",
    is_flag=True,
    help="Where a version's number is taken here (or was used here), store it as the next version.",
)
@click.option("--aliases", is_flag=True, help="Also set the versions' aliases here.")
@json_option()
@pass_doge_options
def pull(doge_options, specs, new_version, aliases, as_json):
    """Copy REFs of a remote into this registry, keeping their sha256 and version numbers."""
    from doge.cli.remote import open_remote, report
    from doge.registry.remotes import split_remote_ref
    from doge.registry.transfer import pull as pull_versions

    by_remote: dict[str, list[str]] = {}
    for name, ref in map(split_remote_ref, specs):
        by_remote.setdefault(name, []).append(ref)
    local = doge_options.registry()
    placed = {
        name: pull_versions(
            open_remote(doge_options, name), refs, local, name, new_version=new_version, aliases=aliases
        )
        for name, refs in by_remote.items()
    }
    if as_json:
        report([p for ps in placed.values() for p in ps], "pulled", "", "", as_json=True)
        return
    for name, ps in placed.items():
        report(ps, "pulled", f"from {name}", "here")


@gap.command()
@click.argument("ref_a")
@click.argument("ref_b")
@json_option()
@pass_doge_options
def diff(doge_options, ref_a, ref_b, as_json):
    """Compare two gaps: cosine, norm ratio and provenance differences."""
    from doge.gaps.compare import gap_diff

    reg = doge_options.registry()
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
