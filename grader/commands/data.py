"""``grader data``: find, download or copy the CIFAR-10 test set, check it, say where it is."""

from __future__ import annotations

import hashlib
from pathlib import Path

import click

#: The official archive's MD5, as published on https://www.cs.toronto.edu/~kriz/cifar.html
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"


@click.command("data")
@click.option(
    "--from", "source", type=click.Path(exists=True, path_type=Path), default=None,
    help="A test set to use: .npz (x, y), a folder, cifar-10-batches-py or the .tar.gz.",
)  # fmt: skip
def data(source: Path | None) -> None:
    """Make the CIFAR-10 test set available to the grader (offline: give --from PATH)."""
    import numpy as np

    from grader.data import find_test_set
    from grader.settings import get_settings

    if source is not None and source.is_file() and source.name.endswith(".tar.gz"):
        digest = hashlib.md5(source.read_bytes(), usedforsecurity=False).hexdigest()
        if digest != ARCHIVE_MD5:
            raise click.ClickException(
                f"{source} is not the official CIFAR-10 archive (MD5 {digest}, "
                f"expected {ARCHIVE_MD5})."
            )
        click.echo(f"{source}: the official archive (MD5 {digest}).")
    test_set = find_test_set(source, get_settings().cifar10)
    labels = np.bincount(test_set.labels.astype(np.int64), minlength=10)
    if len(test_set.labels) != 10_000 or set(labels.tolist()) != {1000}:
        click.echo(
            f"Warning: {len(test_set.labels):,} images, {labels.tolist()} per class; the official "
            "test set has 10,000 images, 1,000 per class."
        )
    click.echo(f"CIFAR-10 test set from {test_set.source}")
    click.echo(f"  kept as {test_set.images_path} (read-only by the sandboxes)")
    if source is not None:
        click.echo(f"  to use it in the service: GRADER_CIFAR10={source.resolve()}")
