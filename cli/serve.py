"""``doge serve``: the gap library in a browser (pages and a JSON API) on the registry the CLI uses."""

from __future__ import annotations

import socket

import click

from doge.cli.context import pass_doge_options
from doge.errors import DogeError
from doge.net import is_loopback


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless you say so).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--allow-writes",
    is_flag=True,
    help="Let holders of a DOGE_SERVE_TOKEN (USER:TOKEN, comma-separated) tag, untag and label over the API, "
    "and mark --dataset images rejected or kept.",
)
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Also answer requests for this Host name (a reverse proxy's name; repeatable). Others get 400.",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    help="An OUT folder of doge augment or doge render to show at /datasets (repeatable).",
)
@click.option(
    "--source-root",
    "source_roots",
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    help="A folder a --dataset's sources (or its --work area) may be shown from, when its run recorded one "
    "inside it (repeatable). Without it only files inside OUT and its default work area are served.",
)
@click.option(
    "--dataset-page-size",
    default=48,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Images on one page of a dataset's grid.",
)
@pass_doge_options
def serve(doge_options, host, port, allow_writes, allow_hosts, datasets, source_roots, dataset_page_size):
    """Serve the gap library: pages (library, names, versions, compare) and a JSON API, and with
    --dataset the datasets doge made (images with their labels drawn, scores, reviewers' marks).

    Needs the serve extra: pip install 'doge[serve]'. Read-only unless --allow-writes.
    """
    try:
        import uvicorn

        from doge.serve.app import create_app, tokens_from_env
        from doge.serve.guard import allowed_hosts
    except ImportError as exc:
        raise click.ClickException(f"doge serve needs {exc.name}: pip install 'doge[serve]'") from None
    tokens = tokens_from_env() if allow_writes else None  # refused before anything listens
    hosts = allowed_hosts(host, allow_hosts)
    app = create_app(
        doge_options.registry(busy_timeout_s=BUSY_TIMEOUT_S),
        allow_writes=allow_writes,
        tokens=tokens,
        hosts=hosts,
        datasets=datasets,
        source_roots=source_roots,
        dataset_per_page=dataset_page_size,
    )
    sock = _listen(host, port)  # bound here, so a taken port is one line and port 0 shows the port it got
    port = sock.getsockname()[1]
    if not is_loopback(host):  # only once the address resolved and is ours
        click.echo(f"warning: serving on {host}: anyone who can reach this address can read the library", err=True)
        click.echo(
            f"doge serve answers the Host names {', '.join(sorted(hosts))}; add others with --allow-host NAME",
            err=True,
        )
    shown = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL is bracketed
    click.echo(f"doge serve: http://{shown}:{port}/ ({'writes with a token' if allow_writes else 'read-only'})")
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


BUSY_TIMEOUT_S = 3  # a request waits this long for another writer's SQLite lock, then 503 + Retry-After


def _listen(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise DogeError(
            f"cannot listen on {host}: {exc.strerror or exc}; give --host an address of this machine"
        ) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise DogeError(
            f"cannot listen on {host}:{port} ({(exc.strerror or str(exc)).lower()}): "
            "pick another --port or stop what holds it"
        ) from None
    return sock
