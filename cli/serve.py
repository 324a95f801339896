"""``doge serve``: the gap library in a browser (pages and a JSON API) on the registry the CLI uses."""

from __future__ import annotations

import socket

import click

from doge.cli.context import pass_settings
from doge.errors import DogeError
from doge.net import is_loopback


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless you say so).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--allow-writes",
    is_flag=True,
    help="Let holders of a DOGE_SERVE_TOKEN (USER:TOKEN, comma-separated) tag, untag and label over the API.",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    help="An OUT folder of doge augment or doge render to show at /datasets (repeatable).",
)
@click.option(
    "--dataset-page-size",
    default=48,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Images on one page of a dataset's grid.",
)
@pass_settings
def serve(settings, host, port, allow_writes, datasets, dataset_page_size):
    """Serve the gap library: pages (library, names, versions, compare) and a JSON API, and with
    --dataset the datasets doge made (images with their labels drawn, scores, reviewers' marks).

    Needs the serve extra: pip install 'doge[serve]'. Read-only unless --allow-writes.
    """
    try:
        import uvicorn

        from doge.serve.app import create_app, tokens_from_env
    except ImportError as exc:
        raise click.ClickException(f"doge serve needs {exc.name}: pip install 'doge[serve]'") from None
    app = create_app(
        settings.registry(),
        allow_writes=allow_writes,
        tokens=tokens_from_env() if allow_writes else None,
        datasets=datasets,
        dataset_per_page=dataset_page_size,
    )
    if not is_loopback(host):
        click.echo(f"warning: serving on {host}: anyone who can reach this address can read the library", err=True)
    sock = _listen(host, port)  # bound here, so a taken port is one line and port 0 shows the port it got
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL is bracketed
    click.echo(f"doge serve: http://{shown}:{port}/ ({'writes with a token' if allow_writes else 'read-only'})")
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])


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
